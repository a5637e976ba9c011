// Where conversations are kept: on this device (IndexedDB) for guests, on the server for accounts. The chat
// screen talks to this interface only.
import { z } from 'zod';
import { BACKEND_LABEL, type Backend } from '../../../shared/engine-protocol.ts';
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
   * returns its id in this store. On the server that is conversation.append: chat.stream saves nothing.
   */
  saveTurn(conversation: Conversation, record: AnswerRecord): Promise<string>;
  remove(id: string): Promise<void>;
  rename(id: string, title: string): Promise<void>;
  /** Conversations whose title or text contains `query` (any case), newest first. */
  search(query: string): Promise<ConversationSummary[]>;
}

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
    return conversation.id;
  },
  remove: (id) => deleteConversation(id),
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

/** conversation.append: the server stores what follows the last answer it holds, then this answer. */
async function appendAnswer(
  conversationId: string | undefined,
  prompt: ChatItem[],
  content: string,
  record: AnswerRecord,
): Promise<string> {
  const { id } = await trpc.conversation.append.mutate({
    conversationId,
    messages: prompt.map(({ role, content }) => ({ role, content })),
    answer: {
      content,
      route: record.route,
      provider: record.provider,
      modelId: record.modelId?.slice(0, 128),
      backend: record.backend,
      ttftMs: record.ttftMs === undefined ? undefined : Math.round(record.ttftMs),
      tokensPerSecond: record.tokensPerSecond,
      tokensOut: record.tokensOut,
    },
  });
  return id;
}

export const serverStore: ConversationStore = {
  onServer: true,
  list: () => trpc.conversation.list.query(),
  async open(id) {
    const found = await trpc.conversation.byId.query({ id });
    const messages: ChatItem[] = found.messages.map((m) => {
      const role = m.role === 'SYSTEM' ? 'system' : m.role === 'USER' ? 'user' : 'assistant';
      const parts = [
        m.route === 'CLOUD' ? (m.provider ?? 'cloud') : m.modelId ? `${m.modelId} on a device` : null,
        m.backend ? (BACKEND_LABEL[m.backend as Backend] ?? m.backend) : null,
        m.ttftMs !== null ? `TTFT ${m.ttftMs} ms` : null,
        m.tokensPerSecond !== null ? `${m.tokensPerSecond.toFixed(1)} tok/s` : null,
      ].filter(Boolean);
      return {
        role,
        content: m.content,
        ...(role === 'assistant' && parts.length ? { readout: parts.join(' · ') } : {}),
      };
    });
    return {
      id: found.id,
      title: found.title,
      updatedAt: new Date(found.updatedAt).getTime(),
      messages,
      serverId: found.id,
      // The server keeps its title (set at creation or by a rename); the app does not retitle it.
      titled: true,
    };
  },
  async saveTurn(conversation, record) {
    const answer = conversation.messages.at(-1);
    return appendAnswer(
      conversation.serverId ?? undefined,
      conversation.messages.slice(0, -1),
      answer?.content ?? '',
      record,
    );
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

/**
 * Sends the conversations this device kept for `accountId` while offline to the account, one answered turn at a
 * time (so a sync cut short resumes where it stopped), and removes each from the device once the account holds it
 * all. Returns the device id → server id of each conversation synced in full.
 */
export async function syncOfflineConversations(accountId: string): Promise<Map<string, string>> {
  const synced = new Map<string, string>();
  for (const conversation of await listConversations(1000)) {
    const parsed = SyncForSchema.safeParse(conversation.syncFor);
    if (!parsed.success || parsed.data.accountId !== accountId) continue;
    let { synced: done } = parsed.data;
    let serverId = conversation.serverId ?? undefined;
    const { messages } = conversation;
    for (let i = done; i < messages.length; i++) {
      const answer = messages[i];
      if (answer?.role !== 'assistant') continue;
      serverId = await appendAnswer(
        serverId,
        messages.slice(done, i),
        answer.content,
        answer.record ?? { route: 'LOCAL' },
      );
      done = i + 1;
      await saveConversation({ ...conversation, serverId, syncFor: { accountId, synced: done } });
    }
    // A question left without an answer has nothing to store with it; the account holds the rest.
    if (serverId) {
      await deleteConversation(conversation.id);
      synced.set(conversation.id, serverId);
    }
  }
  return synced;
}
