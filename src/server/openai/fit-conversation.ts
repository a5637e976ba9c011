// A /v1 conversation fitted to a catalogue model's context on the server, before any peer is asked (README,
// "Context"; docs/pipeline.md, "Asking from /v1"): the oldest turns left out and `max_tokens` cut to what is left, as
// every chat of a model is fitted (fitPrompt, src/shared/chat-template.ts), or 400 `context_length_exceeded` when
// the last message alone leaves no room for an answer. Pipeline jobs need the prompt's ids; whole-model jobs send
// the fitted conversation to their peer, whose engine then finds nothing left to trim.
import { ContextOverflowError, answerReserve } from '../../shared/chat-template.ts';
import type { ChatMessage } from '../../shared/schemas/chat.ts';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { OpenAIError } from './errors.ts';
import type { PipelineTokenizer } from './pipeline-tokenizer.ts';

/** The chat template's own tokens, at most: once (the generation prompt, a default system prompt) and a message. */
const TEMPLATE_TOKENS = 256;
const TEMPLATE_TOKENS_PER_MESSAGE = 16;

/**
 * Whether `messages` and the answer's reserve (fitPrompt's: `maxNewTokens`, at most half the context) might not fit
 * the model's context, told from their length alone: a token covers at least one byte of the text (byte-level BPE,
 * SentencePiece with byte fallback, a word-level vocabulary's unknown token), beside the chat template's own. A
 * conversation well inside the context needs no tokenizer: a whole-model job then loads none on the server
 * (transformers.js, hundreds of MiB and a blocked thread for its first load: bench/README.md, "A lean server"), and
 * its peer's engine leaves nothing out either, only cutting a `max_tokens` past the context to the room left, as the
 * server would have (so a client that always sends a large `max_tokens` costs the server no tokenizer).
 */
export function mayOverflow(entry: ManifestEntry, messages: ChatMessage[], maxNewTokens: number): boolean {
  const encoder = new TextEncoder();
  let bound = TEMPLATE_TOKENS + answerReserve(entry.contextLength, maxNewTokens);
  for (const message of messages) bound += encoder.encode(message.content).length + TEMPLATE_TOKENS_PER_MESSAGE;
  return bound > entry.contextLength;
}

export interface FittedConversation {
  /** The prompt's token ids (the chat template applied), the model's end tokens. */
  ids: number[];
  eos: number[];
  /** The request's `maxNewTokens`, or what a long last message leaves of the context. */
  maxNewTokens: number;
  /** The messages the prompt holds (the system prompt and the newest turns): what a peer or a checker runs. */
  used: ChatMessage[];
}

export async function fitConversation(
  entry: ManifestEntry,
  messages: ChatMessage[],
  maxNewTokens: number,
  tokenizer: PipelineTokenizer,
): Promise<FittedConversation> {
  const prompted = await tokenizer
    .tokenize(messages, { context: entry.contextLength, maxNewTokens })
    .catch((error: unknown) => {
      if (!(error instanceof ContextOverflowError)) throw error;
      throw new OpenAIError(
        400,
        'invalid_request_error',
        'context_length_exceeded',
        `The last message takes ${error.promptTokens} tokens with the chat template, which leave no room for an answer in ${entry.id}'s context of ${error.context} (older messages are left out as needed)`,
        { param: 'messages' },
      );
    });
  const trimmed = prompted.fitted?.trimmed ?? 0;
  const system = messages[0]?.role === 'system' ? 1 : 0;
  return {
    ids: prompted.ids,
    eos: prompted.eos,
    maxNewTokens: prompted.fitted?.maxNewTokens ?? maxNewTokens,
    used: [...messages.slice(0, system), ...messages.slice(system + trimmed)],
  };
}
