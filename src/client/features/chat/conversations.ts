// Conversations kept on this device (IndexedDB): guests' chats never leave it.
import { localDb as db } from '../../lib/local-db.ts';
import type { ChatSettings } from './settings.ts';

/** What is known of a finished answer, for the record. */
export interface AnswerRecord {
  route: 'LOCAL' | 'MESH' | 'CLOUD';
  /** The cloud provider's id, for CLOUD answers. */
  provider?: string;
  modelId?: string;
  backend?: 'webgpu' | 'wasm' | 'cpu';
  ttftMs?: number;
  tokensPerSecond?: number;
  tokensOut?: number;
}

export interface ChatItem {
  role: 'system' | 'user' | 'assistant';
  content: string;
  /** Where and how an answer ran, e.g. "this device · WASM · TTFT 96 ms · 41.0 tok/s". */
  readout?: string;
  /** Of an answer made while offline, kept so the account gets the same record when it syncs. */
  record?: AnswerRecord;
  /** The server's id of this message, once an account's conversation holds it. */
  serverId?: string;
}

export interface Conversation {
  id: string;
  title: string;
  updatedAt: number;
  messages: ChatItem[];
  /** The server's id once an account's conversation is stored there. */
  serverId?: string | null;
  /**
   * A signed-in person's conversation kept here while offline (or a guest's moved into an account): which account it
   * goes to when the network returns. The messages the account holds carry their `serverId`; `synced` counts them
   * for copies kept by versions of the app that did not record those ids.
   */
  syncFor?: { accountId: string; synced: number };
  /** Its settings (system prompt, sampling, model); absent: the ones in use when it was opened. */
  settings?: ChatSettings;
  /** Renamed by its owner: the title no longer follows the first question. */
  titled?: boolean;
}

/** Newest first, capped: a long history should not slow the app's start. */
export async function listConversations(limit = 100): Promise<Conversation[]> {
  const all = await (await db()).getAllFromIndex('conversations', 'updatedAt');
  return all.reverse().slice(0, limit);
}

export async function saveConversation(conversation: Conversation): Promise<void> {
  await (await db()).put('conversations', conversation);
}

export async function deleteConversation(id: string): Promise<void> {
  await (await db()).delete('conversations', id);
}

export function titleOf(messages: ChatItem[]): string {
  const first =
    messages
      .find((m) => m.role === 'user')
      ?.content.replace(/\s+/g, ' ')
      .trim() ?? '';
  return first ? (first.length > 60 ? `${first.slice(0, 59)}…` : first) : 'New chat';
}

/** `current` with the server's ids of `saved` (the same conversation as stored, a moment ago). */
export function withServerIds(current: Conversation, saved: Conversation): Conversation {
  return {
    ...current,
    serverId: saved.serverId ?? null,
    messages: current.messages.map((m, i) => {
      const serverId = saved.messages[i]?.serverId;
      return serverId ? { ...m, serverId } : m;
    }),
  };
}

/** The conversation with these messages, titled and stamped now. */
export function withMessages(conversation: Conversation, messages: ChatItem[]): Conversation {
  return {
    ...conversation,
    messages,
    title: conversation.titled ? conversation.title : titleOf(messages),
    updatedAt: Date.now(),
  };
}
