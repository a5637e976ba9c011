// A prompt's token ids with the model's chat template and the generation prompt, as the engine and the pipeline's
// tokenizer both need them (transformers.js types `apply_chat_template` loosely; this is the shape it returns here).
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import type { EngineMessage } from '../shared/engine-protocol.ts';

export function promptIds(tokenizer: PreTrainedTokenizer, messages: EngineMessage[]): number[] {
  const { input_ids: ids } = tokenizer.apply_chat_template(messages, {
    add_generation_prompt: true,
    tokenize: true,
    return_tensor: false,
    return_dict: true,
  }) as unknown as { input_ids: number[] };
  return ids;
}
