// What the engine and the pipeline's tokenizer both read of a model's tokenizer: a prompt's token ids with the chat
// template and the generation prompt (transformers.js types `apply_chat_template` loosely; this is the shape it
// returns here), and the tokens that end an answer.
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import type { EngineMessage } from './engine-protocol.ts';

export function promptIds(tokenizer: PreTrainedTokenizer, messages: EngineMessage[]): number[] {
  const { input_ids: ids } = tokenizer.apply_chat_template(messages, {
    add_generation_prompt: true,
    tokenize: true,
    return_tensor: false,
    return_dict: true,
  }) as unknown as { input_ids: number[] };
  return ids;
}

/** The tokens that end an answer: the generation config's `eos_token_id` (one or a list) and the tokenizer's own. */
export function endTokens(
  tokenizer: PreTrainedTokenizer,
  generation: { eos_token_id?: unknown } | null | undefined,
): Set<number> {
  const eos = new Set<number>(
    [generation?.eos_token_id ?? []].flat().filter((id): id is number => typeof id === 'number'),
  );
  if (tokenizer.eos_token_id !== undefined && tokenizer.eos_token_id !== null) eos.add(Number(tokenizer.eos_token_id));
  return eos;
}
