// Conversations saved on the server for accounts (guests keep theirs on the device).
import { z } from 'zod';
import { CHAT_LIMITS, ChatMessagesSchema } from './chat.ts';

export const ConversationRefSchema = z.object({ id: z.uuid() }).strict();

export const CONVERSATION_LIMITS = { titleChars: 200, queryChars: 200 } as const;

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

/** One finished turn: the messages since the last answer (or the whole chat, for a new one) and the answer. */
export const ConversationAppendSchema = z
  .object({
    conversationId: z.uuid().optional(),
    messages: ChatMessagesSchema,
    answer: z
      .object({
        content: z
          .string()
          .max(CHAT_LIMITS.messageChars, `An answer is at most ${CHAT_LIMITS.messageChars} characters`),
        route: z.enum(['LOCAL', 'MESH', 'CLOUD']),
        provider: z.string().max(32).optional(),
        modelId: z.string().max(128).optional(),
        backend: z.enum(['webgpu', 'wasm', 'cpu']).optional(),
        tokensOut: z.number().int().nonnegative().max(1_000_000).optional(),
        ttftMs: z.number().int().nonnegative().max(86_400_000).optional(),
        tokensPerSecond: z.number().nonnegative().max(1_000_000).optional(),
      })
      .strict(),
  })
  .strict();
export type ConversationAppend = z.infer<typeof ConversationAppendSchema>;
