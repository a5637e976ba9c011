// The way every chat was fitted to its model's context before fitPrompt's search (src/shared/chat-template.ts): one
// turn dropped, the whole prompt tokenized again, until it fits. fitPrompt's tests compare its answers with this one's;
// bench/fit-conversation.ts measures what this one cost.
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import {
  ContextOverflowError,
  type FittedPrompt,
  MIN_ANSWER_TOKENS,
  answerReserve,
  promptIds,
} from '../../src/shared/chat-template.ts';
import type { EngineMessage } from '../../src/shared/engine-protocol.ts';

export function oneTurnAtATime(
  tokenizer: PreTrainedTokenizer,
  messages: EngineMessage[],
  context: number,
  maxNewTokens: number,
): FittedPrompt {
  const system = messages[0]?.role === 'system' ? messages.slice(0, 1) : [];
  const reserve = answerReserve(context, maxNewTokens);
  let rest = messages.slice(system.length);
  let trimmed = 0;
  for (;;) {
    const ids = promptIds(tokenizer, [...system, ...rest]);
    const room = context - ids.length;
    if (room >= reserve) return { ids, trimmed, maxNewTokens: Math.min(maxNewTokens, room) };
    if (rest.length > 1) {
      do {
        rest = rest.slice(1);
        trimmed++;
      } while (rest.length > 1 && rest[0]?.role !== 'user');
      continue;
    }
    if (room >= Math.min(MIN_ANSWER_TOKENS, maxNewTokens)) return { ids, trimmed, maxNewTokens: room };
    throw new ContextOverflowError(ids.length, context);
  }
}
