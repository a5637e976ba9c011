// What the engine and the pipeline's tokenizer both read of a model's tokenizer: a prompt's token ids with the chat
// template and the generation prompt (transformers.js types `apply_chat_template` loosely; this is the shape it
// returns here), the conversation fitted to the model's context (the oldest turns left out), and the tokens that
// end an answer.
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

/** Below this many tokens of room for an answer, refusing is clearer than a clipped reply. */
export const MIN_ANSWER_TOKENS = 8;

/** A conversation whose last message alone leaves no room for an answer in the model's context. */
export class ContextOverflowError extends Error {
  constructor(
    /** The prompt's length with every older turn left out. */
    readonly promptTokens: number,
    readonly context: number,
  ) {
    super(`the prompt is ${promptTokens} tokens long and the context holds ${context}`);
    this.name = 'ContextOverflowError';
  }
}

export interface FittedPrompt {
  ids: number[];
  /** Messages left out, oldest first (the system prompt is kept). */
  trimmed: number;
  /** `maxNewTokens`, or less where the last message leaves less room. */
  maxNewTokens: number;
}

/**
 * The prompt's ids for `messages` with the oldest turns dropped until the prompt and `maxNewTokens` fit `context`
 * (whole turns, so the template still sees user and assistant alternate; the system prompt stays). When the last
 * message alone leaves less than `maxNewTokens`, the answer gets what is left, if that is at least
 * MIN_ANSWER_TOKENS (or `maxNewTokens` when smaller); else ContextOverflowError. Every chat of a model fits its
 * context this way: the engine's whole-model answers and the pipeline's (docs/pipeline.md, "Asking from the chat").
 */
export function fitPrompt(
  tokenizer: PreTrainedTokenizer,
  messages: EngineMessage[],
  { context, maxNewTokens }: { context: number; maxNewTokens: number },
): FittedPrompt {
  const system = messages[0]?.role === 'system' ? messages.slice(0, 1) : [];
  let rest = messages.slice(system.length);
  let trimmed = 0;
  for (;;) {
    const ids = promptIds(tokenizer, [...system, ...rest]);
    if (ids.length + maxNewTokens <= context) return { ids, trimmed, maxNewTokens };
    if (rest.length > 1) {
      // Drop whole turns: many chat templates insist on user/assistant alternation.
      do {
        rest = rest.slice(1);
        trimmed++;
      } while (rest.length > 1 && rest[0]?.role !== 'user');
      continue;
    }
    const room = context - ids.length;
    if (room >= Math.min(MIN_ANSWER_TOKENS, maxNewTokens)) return { ids, trimmed, maxNewTokens: room };
    throw new ContextOverflowError(ids.length, context);
  }
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
