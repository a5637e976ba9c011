// Cloud chat contracts (chat.providers, chat.stream, chat.send), shared by the server and the client.
import { z } from 'zod';

/** Caps on one request: they bound what a client can make the server send upstream (and pay for). */
export const CHAT_LIMITS = {
  messages: 100,
  messageChars: 32_000,
  totalChars: 120_000,
  modelChars: 128,
  maxTokens: 8192,
  stops: 4,
  stopChars: 64,
} as const;

export const ChatProviderIdSchema = z.enum(['openai', 'openrouter', 'huggingface', 'stub']);
export type ChatProviderId = z.infer<typeof ChatProviderIdSchema>;

export const ChatRoleSchema = z.enum(['system', 'user', 'assistant']);
export type ChatRole = z.infer<typeof ChatRoleSchema>;

/** A provider's model name: `gpt-4o-mini`, `meta-llama/Llama-3.1-8B-Instruct:novita`, `openai/gpt-4o`. */
export const ChatModelSchema = z
  .string()
  .min(1, 'Model cannot be empty')
  .max(CHAT_LIMITS.modelChars, `Model is at most ${CHAT_LIMITS.modelChars} characters`)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/, 'Model names are letters, digits and . _ : / @ -');

export const ChatMessageSchema = z
  .object({
    role: ChatRoleSchema,
    content: z.string().max(CHAT_LIMITS.messageChars, `A message is at most ${CHAT_LIMITS.messageChars} characters`),
  })
  .strict();
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export const ChatSamplingSchema = z
  .object({
    temperature: z.number().min(0, 'Temperature is at least 0').max(2, 'Temperature is at most 2').optional(),
    topP: z.number().gt(0, 'Top-p is above 0').max(1, 'Top-p is at most 1').optional(),
    maxTokens: z
      .number()
      .int()
      .min(1, 'Max tokens is at least 1')
      .max(CHAT_LIMITS.maxTokens, `Max tokens is at most ${CHAT_LIMITS.maxTokens}`)
      .optional(),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .optional(),
    /** Text that ends the answer where it would appear (not included), as OpenAI's `stop`: up to 4. */
    stop: z
      .array(
        z
          .string()
          .min(1, 'A stop sequence cannot be empty')
          .max(CHAT_LIMITS.stopChars, `A stop sequence is at most ${CHAT_LIMITS.stopChars} characters`),
      )
      .max(CHAT_LIMITS.stops, `At most ${CHAT_LIMITS.stops} stop sequences`)
      .optional(),
  })
  .strict();
export type ChatSampling = z.infer<typeof ChatSamplingSchema>;

/** The messages of one request: at least one, capped in count and in characters altogether. */
export const ChatMessagesSchema = z
  .array(ChatMessageSchema)
  .min(1, 'Send at least one message')
  .max(CHAT_LIMITS.messages, `At most ${CHAT_LIMITS.messages} messages per request`)
  .refine(
    (messages) => messages.reduce((sum, m) => sum + m.content.length, 0) <= CHAT_LIMITS.totalChars,
    `Messages are at most ${CHAT_LIMITS.totalChars} characters in all`,
  );

export const ChatInputSchema = z
  .object({
    provider: ChatProviderIdSchema,
    model: ChatModelSchema.optional(),
    messages: ChatMessagesSchema,
    sampling: ChatSamplingSchema.default({}),
  })
  .strict();
export type ChatInput = z.input<typeof ChatInputSchema>;

/** Why a chat failed, in `error.data.providerError.code`: a closed set the client can switch on. */
export const ProviderErrorCodeSchema = z.enum([
  'PROVIDER_NOT_CONFIGURED',
  'INVALID_KEY',
  'RATE_LIMITED',
  'MODEL_NOT_FOUND',
  /** The provider refused this request (context too long, bad parameter): its message says why. */
  'UPSTREAM_REJECTED',
  'UPSTREAM_TIMEOUT',
  'UPSTREAM_ERROR',
  'BAD_UPSTREAM_RESPONSE',
  'TOO_MANY_STREAMS',
  /** A provider with costs, asked by a guest while CHAT_PROVIDERS_FOR_GUESTS is off. */
  'ACCOUNT_REQUIRED',
  /** A model outside the provider's allow-list (OPENAI_MODELS, OPENROUTER_MODELS, HF_MODELS). */
  'MODEL_NOT_ALLOWED',
  /** The server runs CHAT_MAX_STREAMS provider chats already (TOO_MANY_STREAMS is one person's cap). */
  'SERVER_BUSY',
  /** This person's CHAT_DAILY_TOKENS_PER_USER is spent until `resetsAt`. */
  'USER_BUDGET_SPENT',
  /** The server's CHAT_DAILY_TOKENS is spent until `resetsAt`. */
  'SERVER_BUDGET_SPENT',
]);
export type ProviderErrorCode = z.infer<typeof ProviderErrorCodeSchema>;

export interface ProviderErrorData {
  code: ProviderErrorCode;
  /** Seconds to wait before trying again, when the provider (or the server's own limit) said so. */
  retryAfterSeconds: number | null;
  /** When a spent daily budget starts again (ISO 8601, the next 00:00 UTC); null for other failures. */
  resetsAt: string | null;
}

export const FinishReasonSchema = z.enum(['stop', 'length', 'content_filter', 'tool_calls', 'other']);
export type FinishReason = z.infer<typeof FinishReasonSchema>;

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface ChatTimings {
  /** From the request reaching the server to the first text. */
  ttftMs: number | null;
  totalMs: number;
  /** Completion tokens over the time from first to last text; null when the provider reported no usage. */
  tokensPerSecond: number | null;
}

export interface ChatDone {
  finishReason: FinishReason;
  /** The model that answered, as the provider names it. */
  model: string;
  usage: ChatUsage | null;
  timings: ChatTimings;
}

/** What `chat.stream` yields: text as it is made, then one `done`. */
export type ChatStreamEvent = { type: 'delta'; text: string } | ({ type: 'done' } & ChatDone);

/** What `chat.send` returns: the whole answer. */
export type ChatAnswer = { text: string } & ChatDone;

export interface ChatProviderInfo {
  id: ChatProviderId;
  label: string;
  configured: boolean;
  defaultModel: string;
  /** The models it may be asked for (its `*_MODELS` allow-list, the default first); null: any model name. */
  models: string[] | null;
  /** The keyless embedded provider: canned text, no language model. */
  stub: boolean;
  /** Whether guests may use it: the stub always, the others only with CHAT_PROVIDERS_FOR_GUESTS. */
  openToGuests: boolean;
}
