// Accounts' saved conversations: one finished turn at a time, in one transaction; edits (a message deleted, the
// messages from one on replaced), settings, renames, and whole conversations moved in from a device. Every call
// reaches only the caller's own conversations: someone else's is NOT_FOUND, as a missing one is.
import type { ChatMessage } from '../../shared/schemas/chat.ts';
import { type ChatSettings, ChatSettingsSchema } from '../../shared/schemas/chat-settings.ts';
import {
  CONVERSATION_LIMITS,
  type ConversationAppend,
  type ConversationImport,
} from '../../shared/schemas/conversation.ts';
import type { Db, PrismaClient } from '../db/client.ts';
import type { Prisma } from '../db/generated/client.ts';
import { ServiceError } from './errors.ts';

const NOT_YOURS = 'No such conversation among yours';

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

const bytesOf = (messages: { content: string }[]) =>
  messages.reduce((sum, message) => sum + Buffer.byteLength(message.content, 'utf8'), 0);

/** Refuses (TOO_LARGE, nothing written) `adding` bytes that would take the account past `maxBytes`. */
async function checkRoom(tx: Db, userId: string, adding: number, maxBytes: number, what: string): Promise<void> {
  // One write per account at a time: two at once could each fit under the cap and together pass it.
  await tx.$queryRaw`SELECT 1 FROM "User" WHERE "id" = ${userId}::uuid FOR UPDATE`;
  const [used] = await tx.$queryRaw<{ bytes: bigint | number | string }[]>`
    SELECT COALESCE(SUM(octet_length(m."content")), 0)::bigint AS bytes
    FROM "Message" m JOIN "Conversation" c ON c."id" = m."conversationId"
    WHERE c."userId" = ${userId}::uuid`;
  const stored = Number(used?.bytes ?? 0);
  if (stored + adding > maxBytes) {
    throw new ServiceError(
      'TOO_LARGE',
      `Saved conversations are limited to ${size(maxBytes)} per account; you keep ${size(stored)} and ${what} adds ${size(adding)}. Delete some conversations to save more.`,
    );
  }
}

/**
 * The first timestamp for messages added to a conversation now: after the last one it holds, so ordering by
 * createdAt gives the order of the chat even when a long import stamped its messages ahead of the clock.
 */
async function nextStamp(tx: Db, conversationId: string): Promise<number> {
  const last = await tx.message.findFirst({
    where: { conversationId },
    orderBy: { createdAt: 'desc' },
    select: { createdAt: true },
  });
  return Math.max(Date.now(), (last?.createdAt.getTime() ?? 0) + 1);
}

async function ownConversation(tx: Db, userId: string, id: string): Promise<void> {
  const own = await tx.conversation.findFirst({ where: { id, userId }, select: { id: true } });
  if (!own) throw new ServiceError('NOT_FOUND', NOT_YOURS);
}

const settingsJson = (settings: ChatSettings | undefined) =>
  settings === undefined ? {} : { settings: settings as Prisma.InputJsonObject };

/** Stored settings, checked on the way out too: a row written by an older schema reads as none. */
function settingsOf(json: Prisma.JsonValue | null): ChatSettings | null {
  const parsed = ChatSettingsSchema.safeParse(json);
  return parsed.success ? parsed.data : null;
}

/**
 * Stores the new turn and its answer; returns the conversation's id and the stored messages' ids, in order (the
 * answer's last). Someone else's conversation is NOT_FOUND; a turn that would take the account past `maxBytes` is
 * TOO_LARGE, with nothing written.
 */
export async function appendTurn(
  db: PrismaClient,
  userId: string,
  turn: ConversationAppend,
  limits: AppendLimits,
): Promise<{ id: string; messageIds: string[] }> {
  return db.$transaction(async (tx) => {
    if (turn.conversationId) await ownConversation(tx, userId, turn.conversationId);
    const messages = turn.conversationId ? newTurn(turn.messages) : turn.messages;
    await checkRoom(tx, userId, bytesOf([...messages, turn.answer]), limits.maxBytes, 'this turn');
    const conversation = turn.conversationId
      ? await tx.conversation.update({
          where: { id: turn.conversationId },
          data: { updatedAt: new Date(), ...settingsJson(turn.settings) },
          select: { id: true },
        })
      : await tx.conversation.create({
          data: { userId, title: titleOf(turn.messages), ...settingsJson(turn.settings) },
          select: { id: true },
        });
    // One millisecond apart, so ordering by createdAt gives the order of the chat.
    const base = await nextStamp(tx, conversation.id);
    const { answer } = turn;
    const created = await tx.message.createManyAndReturn({
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
      select: { id: true, createdAt: true },
    });
    created.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    return { id: conversation.id, messageIds: created.map((m) => m.id) };
  });
}

/**
 * A conversation moved from a device into the account, whole or (with `conversationId`) its next part: stored in
 * order in one transaction, under the same per-account cap as appends. Returns the conversation's id and the
 * stored messages' ids, in order.
 */
export async function importConversation(
  db: PrismaClient,
  userId: string,
  input: ConversationImport,
  limits: AppendLimits,
): Promise<{ id: string; messageIds: string[] }> {
  return db.$transaction(async (tx) => {
    if (input.conversationId) await ownConversation(tx, userId, input.conversationId);
    await checkRoom(tx, userId, bytesOf(input.messages), limits.maxBytes, 'this conversation');
    const title = input.title ?? titleOf(input.messages);
    const conversation = input.conversationId
      ? await tx.conversation.update({
          where: { id: input.conversationId },
          data: { updatedAt: new Date(), ...settingsJson(input.settings) },
          select: { id: true },
        })
      : await tx.conversation.create({
          data: { userId, title, ...settingsJson(input.settings) },
          select: { id: true },
        });
    const base = await nextStamp(tx, conversation.id);
    const created = await tx.message.createManyAndReturn({
      data: input.messages.map((message, i) => ({
        conversationId: conversation.id,
        role: ROLE[message.role],
        content: message.content,
        ...(message.role === 'assistant' && message.record
          ? {
              route: message.record.route,
              provider: message.record.provider ?? null,
              modelId: message.record.modelId ?? null,
              backend: message.record.backend ?? null,
              tokensOut: message.record.tokensOut ?? null,
              ttftMs: message.record.ttftMs ?? null,
              tokensPerSecond: message.record.tokensPerSecond ?? null,
            }
          : {}),
        createdAt: new Date(base + i),
      })),
      select: { id: true, createdAt: true },
    });
    created.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    return { id: conversation.id, messageIds: created.map((m) => m.id) };
  });
}

/** Deletes message `messageId` and every later one: an edited question is answered anew from there. */
export async function truncateConversation(db: PrismaClient, userId: string, id: string, messageId: string) {
  return db.$transaction(async (tx) => {
    await ownConversation(tx, userId, id);
    const from = await tx.message.findFirst({
      where: { id: messageId, conversationId: id },
      select: { createdAt: true },
    });
    if (!from) throw new ServiceError('NOT_FOUND', 'No such message in this conversation');
    const { count } = await tx.message.deleteMany({
      where: { conversationId: id, createdAt: { gte: from.createdAt } },
    });
    await tx.conversation.update({ where: { id }, data: { updatedAt: new Date() }, select: { id: true } });
    return { removed: count };
  });
}

/** Deletes one message of one of the caller's conversations. */
export async function removeMessage(db: PrismaClient, userId: string, id: string, messageId: string) {
  return db.$transaction(async (tx) => {
    await ownConversation(tx, userId, id);
    const { count } = await tx.message.deleteMany({ where: { id: messageId, conversationId: id } });
    if (count === 0) throw new ServiceError('NOT_FOUND', 'No such message in this conversation');
    await tx.conversation.update({ where: { id }, data: { updatedAt: new Date() }, select: { id: true } });
  });
}

/** Replaces a conversation's settings, so they follow its owner to another device. */
export async function setConversationSettings(db: PrismaClient, userId: string, id: string, settings: ChatSettings) {
  const { count } = await db.conversation.updateMany({
    where: { id, userId },
    data: { settings: settings as Prisma.InputJsonObject },
  });
  if (count === 0) throw new ServiceError('NOT_FOUND', NOT_YOURS);
}

export async function removeConversation(db: PrismaClient, userId: string, id: string) {
  const { count } = await db.conversation.deleteMany({ where: { id, userId } });
  if (count === 0) throw new ServiceError('NOT_FOUND', NOT_YOURS);
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
  if (count === 0) throw new ServiceError('NOT_FOUND', NOT_YOURS);
}

export async function conversationById(db: PrismaClient, userId: string, id: string) {
  const conversation = await db.conversation.findFirst({
    where: { id, userId },
    select: {
      id: true,
      title: true,
      updatedAt: true,
      settings: true,
      messages: {
        orderBy: { createdAt: 'asc' },
        take: CONVERSATION_LIMITS.readMessages,
        select: {
          id: true,
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
  if (!conversation) throw new ServiceError('NOT_FOUND', NOT_YOURS);
  return { ...conversation, settings: settingsOf(conversation.settings) };
}
