// Where conversations are kept: on this device (IndexedDB) for guests, on the server for accounts. The chat
// screen talks to this interface only.
import { TRPCClientError } from '@trpc/client';
import { z } from 'zod';
import { BACKEND_LABEL, type Backend } from '../../../shared/engine-protocol.ts';
import { CONVERSATION_LIMITS } from '../../../shared/schemas/conversation.ts';
import { trpc } from '../../lib/trpc.ts';
import {
  type AnswerRecord,
  type ChatItem,
  type Conversation,
  deleteConversation,
  listConversations,
  saveConversation,
} from './conversations.ts';

export type { AnswerRecord };

export interface ConversationSummary {
  id: string;
  title: string;
}

export interface ConversationStore {
  readonly onServer: boolean;
  list(): Promise<ConversationSummary[]>;
  open(id: string): Promise<Conversation>;
  /**
   * Stores the conversation after a finished or stopped answer (the last message), whichever route made it;
   * returns it as stored (on the server: its id and its messages' ids). On the server that is conversation.append:
   * chat.stream saves nothing.
   */
  saveTurn(conversation: Conversation, record: AnswerRecord): Promise<Conversation>;
  /** Message `index` and every later one are about to be replaced (an edited question, a regenerated answer). */
  dropFrom(conversation: Conversation, index: number): Promise<void>;
  /** Message `index` is deleted. */
  removeMessage(conversation: Conversation, index: number): Promise<void>;
  /** The conversation's settings changed: kept where the conversation is. */
  saveSettings(conversation: Conversation): Promise<void>;
  remove(id: string): Promise<void>;
  rename(id: string, title: string): Promise<void>;
  /** Conversations whose title or text contains `query` (any case), newest first. */
  search(query: string): Promise<ConversationSummary[]>;
}

const PendingDeletesSchema = z
  .array(z.object({ accountId: z.uuid(), id: z.uuid() }).strict())
  .max(CONVERSATION_LIMITS.readMessages);
const PENDING_DELETES_KEY = 'mesh:pending-deletes';

function pendingDeletes(): z.infer<typeof PendingDeletesSchema> {
  try {
    const parsed = PendingDeletesSchema.safeParse(JSON.parse(localStorage.getItem(PENDING_DELETES_KEY) ?? '[]'));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

function setPendingDeletes(pending: z.infer<typeof PendingDeletesSchema>): void {
  try {
    localStorage.setItem(PENDING_DELETES_KEY, JSON.stringify(pending.slice(-CONVERSATION_LIMITS.readMessages)));
  } catch {
    // Storage disabled: the account keeps a conversation deleted offline; deleting it again online removes it.
  }
}

// On this device, the whole conversation is written again after each change (use-chat's persist): dropping and
// removing messages need nothing more here. An account's conversation kept here while offline carries the ids of
// the messages the account holds, and the sync makes the account's copy match it (syncOfflineConversations).
export const deviceStore: ConversationStore = {
  onServer: false,
  list: () => listConversations(),
  async open(id) {
    const found = (await listConversations(1000)).find((c) => c.id === id);
    if (!found) throw new Error('This conversation is no longer on this device');
    return found;
  },
  async saveTurn(conversation) {
    await saveConversation(conversation);
    return conversation;
  },
  dropFrom: async () => {},
  removeMessage: async () => {},
  async saveSettings(conversation) {
    if (conversation.messages.length) await saveConversation(conversation);
  },
  async remove(id) {
    const found = (await listConversations(1000)).find((c) => c.id === id);
    // An account's conversation deleted while offline: the account deletes its copy when the network returns.
    if (found?.serverId && found.syncFor) {
      setPendingDeletes([...pendingDeletes(), { accountId: found.syncFor.accountId, id: found.serverId }]);
    }
    await deleteConversation(id);
  },
  async rename(id, title) {
    const found = await deviceStore.open(id);
    await saveConversation({ ...found, title, titled: true });
  },
  async search(query) {
    const needle = query.toLowerCase();
    return (await listConversations(1000))
      .filter(
        (c) =>
          c.title.toLowerCase().includes(needle) || c.messages.some((m) => m.content.toLowerCase().includes(needle)),
      )
      .slice(0, 100);
  },
};

function recordOf(record: AnswerRecord) {
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
function withIds(conversation: Conversation, serverId: string, at: number[], messageIds: string[]): Conversation {
  const messages = [...conversation.messages];
  at.forEach((index, i) => {
    const message = messages[index];
    const id = messageIds[i];
    if (message && id) messages[index] = { ...message, serverId: id };
  });
  return { ...conversation, serverId, messages };
}

const unsaved = (messages: ChatItem[]) => messages.flatMap((message, index) => (message.serverId ? [] : [index]));

/** The server's message (and message id) nearest at or after `index` that the account holds. */
function heldFrom(conversation: Conversation, index: number): string | undefined {
  return conversation.messages.slice(index).find((m) => m.serverId)?.serverId;
}

function roleOf(role: 'SYSTEM' | 'USER' | 'ASSISTANT'): ChatItem['role'] {
  return role === 'SYSTEM' ? 'system' : role === 'USER' ? 'user' : 'assistant';
}

export const serverStore: ConversationStore = {
  onServer: true,
  list: () => trpc.conversation.list.query(),
  async open(id) {
    const found = await trpc.conversation.byId.query({ id });
    const messages: ChatItem[] = found.messages.map((m) => {
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
    });
    return {
      id: found.id,
      title: found.title,
      updatedAt: new Date(found.updatedAt).getTime(),
      messages,
      serverId: found.id,
      ...(found.settings ? { settings: found.settings } : {}),
      // The server keeps its title (set at creation or by a rename); the app does not retitle it.
      titled: true,
    };
  },
  async saveTurn(conversation, record) {
    const answer = conversation.messages.at(-1);
    // What the server does not hold yet: the new question (and any question whose answer failed before it).
    const at = unsaved(conversation.messages.slice(0, -1));
    const { id, messageIds } = await trpc.conversation.append.mutate({
      conversationId: conversation.serverId ?? undefined,
      messages: at.map((index) => {
        const { role, content } = conversation.messages[index] as ChatItem;
        return { role, content };
      }),
      answer: { content: answer?.content ?? '', ...recordOf(record) },
      ...(conversation.settings ? { settings: conversation.settings } : {}),
    });
    return withIds(conversation, id, [...at, conversation.messages.length - 1], messageIds);
  },
  async dropFrom(conversation, index) {
    const from = heldFrom(conversation, index);
    if (conversation.serverId && from)
      await trpc.conversation.truncate.mutate({ id: conversation.serverId, messageId: from });
  },
  async removeMessage(conversation, index) {
    const messageId = conversation.messages[index]?.serverId;
    if (conversation.serverId && messageId)
      await trpc.conversation.removeMessage.mutate({ id: conversation.serverId, messageId });
  },
  async saveSettings(conversation) {
    if (conversation.serverId && conversation.settings)
      await trpc.conversation.settings.mutate({ id: conversation.serverId, settings: conversation.settings });
  },
  remove: async (id) => {
    await trpc.conversation.remove.mutate({ id });
  },
  rename: async (id, title) => {
    await trpc.conversation.rename.mutate({ id, title });
  },
  search: (query) => trpc.conversation.list.query({ query }),
};

const KNOWN_ACCOUNT_KEY = 'mesh:account';
const KnownAccountSchema = z.object({ id: z.uuid() }).strict();

/** The account signed in when the app last reached the server: offline, its conversations wait here for it. */
export function knownAccount(): string | null {
  try {
    const parsed = KnownAccountSchema.safeParse(JSON.parse(localStorage.getItem(KNOWN_ACCOUNT_KEY) ?? 'null'));
    return parsed.success ? parsed.data.id : null;
  } catch {
    return null;
  }
}

export function rememberAccount(id: string | null): void {
  try {
    if (id === null) localStorage.removeItem(KNOWN_ACCOUNT_KEY);
    else localStorage.setItem(KNOWN_ACCOUNT_KEY, JSON.stringify({ id }));
  } catch {
    // Storage disabled: offline conversations then stay on the device only.
  }
}

const SyncForSchema = z.object({ accountId: z.uuid(), synced: z.number().int().nonnegative() }).strict();

const isNotFound = (cause: unknown) =>
  cause instanceof TRPCClientError && (cause.data as { code?: string } | undefined)?.code === 'NOT_FOUND';

/**
 * Makes the account's copy of `conversation` hold no message this device no longer has: deleted here, or replaced
 * by an edit or a regenerated answer while offline. A copy the account no longer has (deleted on another device)
 * goes back to the account as a new conversation.
 */
async function reconcile(conversation: Conversation, legacySynced: number): Promise<Conversation> {
  const id = conversation.serverId;
  if (!id) return conversation;
  let server: Awaited<ReturnType<typeof trpc.conversation.byId.query>>;
  try {
    server = await trpc.conversation.byId.query({ id });
  } catch (cause) {
    if (!isNotFound(cause)) throw cause;
    return { ...conversation, serverId: null, messages: conversation.messages.map(({ serverId: _, ...m }) => m) };
  }
  let { messages } = conversation;
  // Kept by a version of the app that counted the messages the account held instead of naming them.
  if (legacySynced > 0 && !messages.some((m) => m.serverId)) {
    messages = messages.map((m, i) => {
      const held = server.messages[i];
      return i < legacySynced && held ? { ...m, serverId: held.id } : m;
    });
  }
  const kept = new Set(messages.map((m) => m.serverId));
  const first = server.messages.findIndex((m) => !kept.has(m.id));
  if (first >= 0) {
    const gone = server.messages.slice(first);
    const firstGone = gone[0];
    if (firstGone && gone.every((m) => !kept.has(m.id))) {
      await trpc.conversation.truncate.mutate({ id, messageId: firstGone.id });
    } else {
      for (const m of gone) if (!kept.has(m.id)) await trpc.conversation.removeMessage.mutate({ id, messageId: m.id });
    }
  }
  return { ...conversation, messages };
}

/** Runs of messages that each fit one conversation.import call. */
function importParts(at: number[], messages: ChatItem[]): number[][] {
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

/**
 * Sends to the account the messages of `conversation` it does not hold yet, in parts, keeping the progress on this
 * device after each (a sync cut short resumes where it stopped); returns the conversation as the account holds it.
 */
async function upload(conversation: Conversation, accountId: string): Promise<Conversation> {
  let current = conversation;
  const at = unsaved(current.messages);
  for (const part of importParts(at, current.messages)) {
    const { id, messageIds } = await trpc.conversation.import.mutate({
      conversationId: current.serverId ?? undefined,
      ...(current.serverId ? {} : { title: current.title.slice(0, CONVERSATION_LIMITS.titleChars) }),
      ...(current.settings ? { settings: current.settings } : {}),
      messages: part.map((index) => {
        const { role, content, record } = current.messages[index] as ChatItem;
        return { role, content, ...(role === 'assistant' && record ? { record: recordOf(record) } : {}) };
      }),
    });
    current = withIds(current, id, part, messageIds);
    await saveConversation({ ...current, syncFor: { accountId, synced: 0 } });
  }
  if (current.serverId) {
    // Renamed here, or settings changed with no new message to carry them: they go too.
    if (current.titled) await trpc.conversation.rename.mutate({ id: current.serverId, title: current.title });
    if (current.settings && !at.length)
      await trpc.conversation.settings.mutate({ id: current.serverId, settings: current.settings });
  }
  return current;
}

let syncing: Promise<unknown> = Promise.resolve();

/**
 * Sends the conversations this device keeps for `accountId` to the account: those kept while offline (with their
 * edits and deletes), and a guest's moved into it. Each is removed from the device once the account holds it all.
 * Returns the device id → server id of each conversation synced in full. One sync at a time in this tab: two at once
 * would send the same messages twice.
 */
export function syncOfflineConversations(accountId: string): Promise<Map<string, string>> {
  const run = syncing.then(async () => {
    const synced = new Map<string, string>();
    for (const stored of await listConversations(1000)) {
      const parsed = SyncForSchema.safeParse(stored.syncFor);
      if (!parsed.success || parsed.data.accountId !== accountId) continue;
      const held = await upload(await reconcile(stored, parsed.data.synced), accountId);
      if (held.serverId) {
        await deleteConversation(stored.id);
        synced.set(stored.id, held.serverId);
      }
    }
    const pending = pendingDeletes();
    for (const { id } of pending.filter((p) => p.accountId === accountId)) {
      await trpc.conversation.remove.mutate({ id }).catch((cause: unknown) => {
        if (!isNotFound(cause)) throw cause;
      });
      setPendingDeletes(pendingDeletes().filter((p) => p.id !== id));
    }
    return synced;
  });
  syncing = run.catch(() => undefined);
  return run;
}

/** A guest's conversations on this device: what signing up or logging in offers to move into the account. */
export async function guestConversations(): Promise<Conversation[]> {
  return (await listConversations(1000)).filter((c) => !c.syncFor && !c.serverId && c.messages.length > 0);
}

/** Moves these device conversations into the account: uploaded, then removed from the device. */
export async function moveToAccount(accountId: string, conversations: Conversation[]): Promise<Map<string, string>> {
  for (const conversation of conversations)
    await saveConversation({ ...conversation, syncFor: { accountId, synced: 0 } });
  return syncOfflineConversations(accountId);
}
