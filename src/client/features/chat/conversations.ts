// Conversations kept on this device (IndexedDB): guests' chats never leave it.
import { type DBSchema, type IDBPDatabase, openDB } from 'idb';

export interface ChatItem {
  role: 'system' | 'user' | 'assistant';
  content: string;
  /** Where and how an answer ran, e.g. "this device · WASM · TTFT 96 ms · 41.0 tok/s". */
  readout?: string;
}

export interface Conversation {
  id: string;
  title: string;
  updatedAt: number;
  messages: ChatItem[];
  /** The server's id once an account's conversation is stored there. */
  serverId?: string | null;
}

interface Schema extends DBSchema {
  conversations: { key: string; value: Conversation; indexes: { updatedAt: number } };
}

let database: Promise<IDBPDatabase<Schema>> | null = null;
function db() {
  database ??= openDB<Schema>('mesh-nanollm', 1, {
    upgrade(upgrade) {
      upgrade.createObjectStore('conversations', { keyPath: 'id' }).createIndex('updatedAt', 'updatedAt');
    },
  });
  return database;
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
  const first = messages.find((m) => m.role === 'user')?.content.replace(/\s+/g, ' ').trim() ?? '';
  return first ? (first.length > 60 ? `${first.slice(0, 59)}…` : first) : 'New chat';
}
