// Accounts' saved conversations: one finished turn at a time, in one transaction.
import type { ChatMessage } from '../../shared/schemas/chat.ts';
import type { ConversationAppend } from '../../shared/schemas/conversation.ts';
import type { PrismaClient } from '../db/client.ts';
import { ServiceError } from './errors.ts';

const TITLE_CHARS = 80;

export function titleOf(messages: ChatMessage[]): string {
  const first =
    messages
      .find((message) => message.role === 'user')
      ?.content.replace(/\s+/g, ' ')
      .trim() ?? '';
  if (!first) return 'New chat';
  return first.length > TITLE_CHARS ? `${first.slice(0, TITLE_CHARS - 1)}…` : first;
}

/** The turn a continued conversation has not stored yet: what follows the last assistant message. */
function newTurn(messages: ChatMessage[]): ChatMessage[] {
  const lastAnswer = messages.findLastIndex((message) => message.role === 'assistant');
  return messages.slice(lastAnswer + 1);
}

const ROLE = { system: 'SYSTEM', user: 'USER', assistant: 'ASSISTANT' } as const;

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export interface AppendLimits {
  /** CONVERSATION_MAX_BYTES_PER_USER: UTF-8 bytes of message text one account may keep. */
  maxBytes: number;
}

/**
 * Stores the new turn and its answer; returns the conversation's id. Someone else's conversation is NOT_FOUND; a
 * turn that would take the account past `maxBytes` is PAYLOAD_TOO_LARGE, with nothing written.
 */
export async function appendTurn(
  db: PrismaClient,
  userId: string,
  turn: ConversationAppend,
  limits: AppendLimits,
): Promise<string> {
  return db.$transaction(async (tx) => {
    if (turn.conversationId) {
      const own = await tx.conversation.findFirst({ where: { id: turn.conversationId, userId }, select: { id: true } });
      if (!own) throw new ServiceError('NOT_FOUND', 'No such conversation among yours');
    }
    const messages = turn.conversationId ? newTurn(turn.messages) : turn.messages;
    const adding = [...messages, turn.answer].reduce(
      (sum, message) => sum + Buffer.byteLength(message.content, 'utf8'),
      0,
    );
    // One append per account at a time: two at once could each fit under the cap and together pass it.
    await tx.$queryRaw`SELECT 1 FROM "User" WHERE "id" = ${userId}::uuid FOR UPDATE`;
    const [used] = await tx.$queryRaw<{ bytes: bigint | number | string }[]>`
      SELECT COALESCE(SUM(octet_length(m."content")), 0)::bigint AS bytes
      FROM "Message" m JOIN "Conversation" c ON c."id" = m."conversationId"
      WHERE c."userId" = ${userId}::uuid`;
    const stored = Number(used?.bytes ?? 0);
    if (stored + adding > limits.maxBytes) {
      throw new ServiceError(
        'TOO_LARGE',
        `Saved conversations are limited to ${size(limits.maxBytes)} per account; you keep ${size(stored)} and this turn adds ${size(adding)}. Delete some conversations to save more.`,
      );
    }
    const conversation = turn.conversationId
      ? await tx.conversation.update({
          where: { id: turn.conversationId },
          data: { updatedAt: new Date() },
          select: { id: true },
        })
      : await tx.conversation.create({ data: { userId, title: titleOf(turn.messages) }, select: { id: true } });
    // One millisecond apart, so ordering by createdAt gives the order of the chat.
    const base = Date.now();
    const { answer } = turn;
    await tx.message.createMany({
      data: [
        ...messages.map((message, i) => ({
          conversationId: conversation.id,
          role: ROLE[message.role],
          content: message.content,
          createdAt: new Date(base + i),
        })),
        {
          conversationId: conversation.id,
          role: 'ASSISTANT' as const,
          content: answer.content,
          route: answer.route,
          provider: answer.provider ?? null,
          modelId: answer.modelId ?? null,
          backend: answer.backend ?? null,
          tokensOut: answer.tokensOut ?? null,
          ttftMs: answer.ttftMs ?? null,
          tokensPerSecond: answer.tokensPerSecond ?? null,
          createdAt: new Date(base + messages.length),
        },
      ],
    });
    return conversation.id;
  });
}

/** Newest first; with `query`, those whose title or any message contains it (any case). */
export async function listConversations(db: PrismaClient, userId: string, query = '', take = 100) {
  const contains = { contains: query, mode: 'insensitive' } as const;
  return db.conversation.findMany({
    where: query ? { userId, OR: [{ title: contains }, { messages: { some: { content: contains } } }] } : { userId },
    orderBy: { updatedAt: 'desc' },
    take,
    select: { id: true, title: true, updatedAt: true },
  });
}

export async function renameConversation(db: PrismaClient, userId: string, id: string, title: string) {
  const { count } = await db.conversation.updateMany({ where: { id, userId }, data: { title } });
  if (count === 0) throw new ServiceError('NOT_FOUND', 'No such conversation among yours');
}

export async function conversationById(db: PrismaClient, userId: string, id: string) {
  const conversation = await db.conversation.findFirst({
    where: { id, userId },
    select: {
      id: true,
      title: true,
      updatedAt: true,
      messages: {
        orderBy: { createdAt: 'asc' },
        take: 1000,
        select: {
          role: true,
          content: true,
          route: true,
          provider: true,
          modelId: true,
          backend: true,
          ttftMs: true,
          tokensPerSecond: true,
        },
      },
    },
  });
  if (!conversation) throw new ServiceError('NOT_FOUND', 'No such conversation among yours');
  return conversation;
}
