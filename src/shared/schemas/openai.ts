// The OpenAI-compatible API's request body (POST /v1/chat/completions), as OpenAI's chat completions take it. Fields
// this server does not use are ignored, as OpenAI ignores what it does not know; fields it uses are checked, and
// the messages and sampling are held to the same caps as the app's own chat (CHAT_LIMITS).
import { z } from 'zod';
import { type ChatMessage, ChatInputSchema, ChatSamplingSchema } from './chat.ts';

/** `openrouter/` + an OpenRouter model name of up to 128 characters is the longest model name. */
const MODEL_NAME_CHARS = 160;

const TextPartSchema = z
  .object({ type: z.literal('text', 'Only text content parts are supported'), text: z.string() })
  .loose();

const MessageSchema = z
  .object({
    // `developer` is what newer OpenAI clients send in place of `system`.
    role: z.enum(
      ['system', 'developer', 'user', 'assistant'],
      'Roles are system (or developer), user and assistant; tools are not supported',
    ),
    content: z.union(
      [z.string(), z.array(TextPartSchema).max(64, 'At most 64 content parts per message')],
      'Content is a string or an array of text parts',
    ),
  })
  .loose();

function toChatMessage(message: z.output<typeof MessageSchema>): ChatMessage {
  const content =
    typeof message.content === 'string' ? message.content : message.content.map((part) => part.text).join('');
  return { role: message.role === 'developer' ? 'system' : message.role, content };
}

/** OpenAI's nullable fields: null is the same as absent. */
const orNull = <T extends z.ZodType>(schema: T) => schema.nullish().transform((value) => value ?? undefined);

const { temperature, topP, maxTokens, seed, stop } = ChatSamplingSchema.shape;

export const OpenAIChatRequestSchema = z.object({
  model: z
    .string('Name a model (GET /v1/models lists them)')
    .min(1, 'Name a model (GET /v1/models lists them)')
    .max(MODEL_NAME_CHARS, `A model name is at most ${MODEL_NAME_CHARS} characters`),
  messages: z
    .array(MessageSchema, 'messages is an array of messages')
    .max(1000)
    .transform((messages) => messages.map(toChatMessage))
    .pipe(ChatInputSchema.shape.messages),
  temperature: orNull(temperature.unwrap()),
  top_p: orNull(topP.unwrap()),
  max_tokens: orNull(maxTokens.unwrap()),
  max_completion_tokens: orNull(maxTokens.unwrap()),
  seed: orNull(seed.unwrap()),
  stop: orNull(z.union([z.string(), z.array(z.string())], 'stop is a string or an array of strings'))
    .transform((value) => (typeof value === 'string' ? [value] : value))
    .pipe(stop),
  n: orNull(
    z
      .number()
      .int()
      .refine((n) => n === 1, 'Only n: 1 is supported: ask again for another answer'),
  ),
  stream: orNull(z.boolean()),
  stream_options: orNull(z.object({ include_usage: orNull(z.boolean()) }).loose()),
  /** OpenAI's end-user id, for abuse reports; checked, then not kept or sent on. */
  user: orNull(z.string().max(256, 'user is at most 256 characters')),
});
export type OpenAIChatRequest = z.output<typeof OpenAIChatRequestSchema>;
