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
  /** `maxNewTokens`, or less where the prompt leaves less room in the context. */
  maxNewTokens: number;
}

/**
 * The prompt's ids for `messages` with the oldest turns dropped until the prompt and the answer's reserve fit
 * `context` (whole turns, so the template still sees user and assistant alternate; the system prompt stays). The
 * reserve is `maxNewTokens`, but never more than half the context (answerReserve): `maxNewTokens` is a ceiling, and
 * one near the context's size (clients of an OpenAI-style API often send 4096) would otherwise leave out every
 * earlier turn; the answer may still run to `maxNewTokens` or the context's end, whichever comes first. When the
 * last message alone leaves less than the reserve, the answer gets what is left, if that is at least
 * MIN_ANSWER_TOKENS (or `maxNewTokens` when smaller); else ContextOverflowError. Every chat of a model fits its
 * context this way: the engine's whole-model answers, the pipeline's (docs/pipeline.md, "Asking from the chat") and
 * the server's for /v1 (README, "Context").
 *
 * The fewest turns to drop are found by a search over the turns' starts (a prompt only shortens as older turns go):
 * the whole conversation once, then prompts of the newest turns, growing, then bisection. A long conversation is
 * tokenized a handful of times, mostly its newest part, not once whole per turn dropped: on the server's thread, 100
 * messages of 1,200 characters took about a second that way (bench/README.md, "Fitting a /v1 conversation").
 */
export function fitPrompt(
  tokenizer: PreTrainedTokenizer,
  messages: EngineMessage[],
  { context, maxNewTokens }: { context: number; maxNewTokens: number },
): FittedPrompt {
  const system = messages[0]?.role === 'system' ? messages.slice(0, 1) : [];
  const rest = messages.slice(system.length);
  // Where the kept part may start: the first message, each later user turn (many chat templates insist on
  // user/assistant alternation), and the last message, which is always kept.
  const starts = rest.map((message, i) => (i === 0 || message.role === 'user' ? i : -1)).filter((i) => i >= 0);
  if (rest.length > 1 && starts.at(-1) !== rest.length - 1) starts.push(rest.length - 1);
  if (starts.length === 0) starts.push(0);
  const ids = new Map<number, number[]>();
  const prompt = (at: number) => {
    const start = starts[at] ?? 0;
    let found = ids.get(start);
    if (!found) ids.set(start, (found = promptIds(tokenizer, [...system, ...rest.slice(start)])));
    return found;
  };
  const reserve = answerReserve(context, maxNewTokens);
  const fits = (at: number) => prompt(at).length + reserve <= context;
  // `fits(hi)` or hi is the last start; `fits(lo)` is false.
  let lo = 0;
  let hi = starts.length - 1;
  if (fits(0)) hi = 0;
  else if (fits(hi)) {
    // Back from the newest turns in growing steps: what fits is short beside a history that does not, so the
    // prompts tried here are too; then bisection between the last that fits and the first that does not.
    for (let step = 1; hi - step > lo; step *= 2) {
      if (!fits(hi - step)) {
        lo = hi - step;
        break;
      }
      hi -= step;
    }
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (fits(mid)) hi = mid;
      else lo = mid;
    }
  }
  const kept = prompt(hi);
  const trimmed = starts[hi] ?? 0;
  const room = context - kept.length;
  if (room >= Math.min(MIN_ANSWER_TOKENS, maxNewTokens))
    return { ids: kept, trimmed, maxNewTokens: Math.min(maxNewTokens, room) };
  throw new ContextOverflowError(kept.length, context);
}

/** What fitPrompt keeps free for the answer: `maxNewTokens`, at most half the context (but MIN_ANSWER_TOKENS). */
export function answerReserve(context: number, maxNewTokens: number): number {
  return Math.min(maxNewTokens, Math.max(MIN_ANSWER_TOKENS, Math.floor(context / 2)));
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
