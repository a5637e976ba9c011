// The one mapping between a conversation as this device keeps it (conversations.ts) and as the server holds it
// (the conversation procedures): a message's record on the wire, the server's ids given back to messages, which
// messages the server does not hold yet, a server message as a chat item, and imports cut to the server's limits.
// Pure: the stores (device-store.ts, server-store.ts) and the sync (conversation-sync.ts) share it.
import type { inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from '../../../server/trpc/root.ts';
import { BACKEND_LABEL, type Backend } from '../../../shared/engine-protocol.ts';
import { CONVERSATION_LIMITS } from '../../../shared/schemas/conversation.ts';
import type { AnswerRecord, ChatItem, Conversation } from './conversations.ts';

export type ServerConversation = inferRouterOutputs<AppRouter>['conversation']['byId'];
export type ServerMessage = ServerConversation['messages'][number];

/** An answer's record as the server takes it (model id and TTFT cut to what it stores). */
export function recordOf(record: AnswerRecord) {
  return {
    route: record.route,
    provider: record.provider,
    modelId: record.modelId?.slice(0, 128),
    backend: record.backend,
    ttftMs: record.ttftMs === undefined ? undefined : Math.round(record.ttftMs),
    tokensPerSecond: record.tokensPerSecond,
    tokensOut: record.tokensOut,
  };
}

/** The conversation with the server's ids given, in order, to the messages `at` these indexes. */
export function withIds(
  conversation: Conversation,
  serverId: string,
  at: number[],
  messageIds: string[],
): Conversation {
  const messages = [...conversation.messages];
  at.forEach((index, i) => {
    const message = messages[index];
    const id = messageIds[i];
    if (message && id) messages[index] = { ...message, serverId: id };
  });
  return { ...conversation, serverId, messages };
}

/** Indexes of the messages the server does not hold yet. */
export const unsaved = (messages: ChatItem[]): number[] =>
  messages.flatMap((message, index) => (message.serverId ? [] : [index]));

/** The server's message (and message id) nearest at or after `index` that the account holds. */
export function heldFrom(conversation: Conversation, index: number): string | undefined {
  return conversation.messages.slice(index).find((m) => m.serverId)?.serverId;
}

function roleOf(role: ServerMessage['role']): ChatItem['role'] {
  return role === 'SYSTEM' ? 'system' : role === 'USER' ? 'user' : 'assistant';
}

/** A server message as the chat shows it: an answer with its record as a readout ("nano on a device · WASM · ..."). */
export function itemFromServer(m: ServerMessage): ChatItem {
  const role = roleOf(m.role);
  const parts = [
    m.route === 'CLOUD' ? (m.provider ?? 'cloud') : m.modelId ? `${m.modelId} on a device` : null,
    m.backend ? (BACKEND_LABEL[m.backend as Backend] ?? m.backend) : null,
    m.ttftMs !== null ? `TTFT ${m.ttftMs} ms` : null,
    m.tokensPerSecond !== null ? `${m.tokensPerSecond.toFixed(1)} tok/s` : null,
  ].filter(Boolean);
  return {
    role,
    content: m.content,
    serverId: m.id,
    ...(role === 'assistant' && parts.length ? { readout: parts.join(' · ') } : {}),
  };
}

/** The server's conversation as the chat keeps it. */
export function conversationFromServer(found: ServerConversation): Conversation {
  return {
    id: found.id,
    title: found.title,
    updatedAt: new Date(found.updatedAt).getTime(),
    messages: found.messages.map(itemFromServer),
    serverId: found.id,
    ...(found.settings ? { settings: found.settings } : {}),
    // The server keeps its title (set at creation or by a rename); the app does not retitle it.
    titled: true,
  };
}

/** Runs of the messages at `at` that each fit one conversation.import call. */
export function importParts(at: number[], messages: ChatItem[]): number[][] {
  const parts: number[][] = [];
  let part: number[] = [];
  let chars = 0;
  for (const index of at) {
    const length = messages[index]?.content.length ?? 0;
    if (
      part.length &&
      (part.length >= CONVERSATION_LIMITS.importMessages || chars + length > CONVERSATION_LIMITS.importChars)
    ) {
      parts.push(part);
      part = [];
      chars = 0;
    }
    part.push(index);
    chars += length;
  }
  if (part.length) parts.push(part);
  return parts;
}
