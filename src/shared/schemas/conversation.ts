// Conversations saved on the server for accounts (guests keep theirs on the device).
import { z } from 'zod';
import { CHAT_LIMITS, ChatMessageSchema } from './chat.ts';
import { ChatSettingsSchema } from './chat-settings.ts';

export const ConversationRefSchema = z.object({ id: z.uuid() }).strict();

export const CONVERSATION_LIMITS = {
  titleChars: 200,
  queryChars: 200,
  /** conversation.import: messages per call (a longer conversation goes in several calls). */
  importMessages: 200,
  /** conversation.import: characters per call, so a call stays under BODY_LIMIT_BYTES (1 MiB) in UTF-8. */
  importChars: 300_000,
  /** conversation.byId: messages read back. */
  readMessages: 1000,
} as const;

export const ConversationRenameSchema = z
  .object({
    id: z.uuid(),
    title: z
      .string()
      .trim()
      .min(1, 'A title cannot be empty')
      .max(CONVERSATION_LIMITS.titleChars, `A title is at most ${CONVERSATION_LIMITS.titleChars} characters`),
  })
  .strict();

/** conversation.list's optional filter: titles and message text containing `query` (any case). */
export const ConversationListSchema = z
  .object({
    query: z
      .string()
      .trim()
      .max(CONVERSATION_LIMITS.queryChars, `A search is at most ${CONVERSATION_LIMITS.queryChars} characters`),
  })
  .strict()
  .optional();

const AnswerRecordSchema = z
  .object({
    route: z.enum(['LOCAL', 'MESH', 'CLOUD']),
    provider: z.string().max(32).optional(),
    modelId: z.string().max(128).optional(),
    backend: z.enum(['webgpu', 'wasm', 'cpu']).optional(),
    tokensOut: z.number().int().nonnegative().max(1_000_000).optional(),
    ttftMs: z.number().int().nonnegative().max(86_400_000).optional(),
    tokensPerSecond: z.number().nonnegative().max(1_000_000).optional(),
  })
  .strict();

/**
 * One finished turn: the messages the server does not hold yet (or, as older clients send, the whole chat: the
 * server keeps what follows the last answer in it) and the answer. A regenerated answer to a question the server
 * holds sends no messages. `settings`: the conversation's, stored with it.
 */
export const ConversationAppendSchema = z
  .object({
    conversationId: z.uuid().optional(),
    messages: z
      .array(ChatMessageSchema)
      .max(CHAT_LIMITS.messages, `At most ${CHAT_LIMITS.messages} messages per request`)
      .refine(
        (messages) => messages.reduce((sum, m) => sum + m.content.length, 0) <= CHAT_LIMITS.totalChars,
        `Messages are at most ${CHAT_LIMITS.totalChars} characters in all`,
      ),
    answer: AnswerRecordSchema.extend({
      content: z.string().max(CHAT_LIMITS.messageChars, `An answer is at most ${CHAT_LIMITS.messageChars} characters`),
    }).strict(),
    settings: ChatSettingsSchema.optional(),
  })
  .strict()
  .refine((turn) => turn.conversationId || turn.messages.length > 0, {
    message: 'Send at least one message',
    path: ['messages'],
  });
export type ConversationAppend = z.infer<typeof ConversationAppendSchema>;

/** conversation.settings: a stored conversation's settings, replaced whole. */
export const ConversationSettingsSchema = z.object({ id: z.uuid(), settings: ChatSettingsSchema }).strict();

/** A message of one of the caller's conversations. */
export const ConversationMessageRefSchema = z.object({ id: z.uuid(), messageId: z.uuid() }).strict();

/**
 * A whole conversation (or the next part of one, with `conversationId`) moved from a device into the account:
 * messages in order, answers with what is known of where they ran.
 */
export const ConversationImportSchema = z
  .object({
    conversationId: z.uuid().optional(),
    title: z.string().trim().min(1).max(CONVERSATION_LIMITS.titleChars).optional(),
    settings: ChatSettingsSchema.optional(),
    messages: z
      .array(
        z
          .object({
            role: ChatMessageSchema.shape.role,
            content: ChatMessageSchema.shape.content,
            record: AnswerRecordSchema.optional(),
          })
          .strict(),
      )
      .min(1, 'A conversation to move has at least one message')
      .max(CONVERSATION_LIMITS.importMessages, `At most ${CONVERSATION_LIMITS.importMessages} messages per call`)
      .refine(
        (messages) => messages.reduce((sum, m) => sum + m.content.length, 0) <= CONVERSATION_LIMITS.importChars,
        `At most ${CONVERSATION_LIMITS.importChars} characters per call`,
      ),
  })
  .strict();
export type ConversationImport = z.infer<typeof ConversationImportSchema>;
