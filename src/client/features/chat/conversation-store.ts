// Where conversations are kept: on this device (IndexedDB) for guests, on the server for accounts. The chat
// screen talks to this interface only.
import { BACKEND_LABEL, type Backend } from '../../../shared/engine-protocol.ts';
import { trpc } from '../../lib/trpc.ts';
import { type ChatItem, type Conversation, deleteConversation, listConversations, saveConversation } from './conversations.ts';

export interface ConversationSummary {
  id: string;
  title: string;
}

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
};

export const serverStore: ConversationStore = {
  onServer: true,
  list: () => trpc.conversation.list.query(),
  async open(id) {
    const found = await trpc.conversation.byId.query({ id });
    const messages: ChatItem[] = found.messages.map((m) => {
      const role = m.role === 'SYSTEM' ? 'system' : m.role === 'USER' ? 'user' : 'assistant';
      const parts = [m.route === 'CLOUD' ? (m.provider ?? 'cloud') : m.modelId ? `${m.modelId} on a device` : null, m.backend ? (BACKEND_LABEL[m.backend as Backend] ?? m.backend) : null, m.ttftMs !== null ? `TTFT ${m.ttftMs} ms` : null, m.tokensPerSecond !== null ? `${m.tokensPerSecond.toFixed(1)} tok/s` : null].filter(Boolean);
      return { role, content: m.content, ...(role === 'assistant' && parts.length ? { readout: parts.join(' · ') } : {}) };
    });
    return { id: found.id, title: found.title, updatedAt: new Date(found.updatedAt).getTime(), messages, serverId: found.id };
  },
  async saveTurn(conversation, record) {
    const answer = conversation.messages.at(-1);
    const prompt = conversation.messages.slice(0, -1).map(({ role, content }) => ({ role, content }));
    const { id } = await trpc.conversation.append.mutate({
      conversationId: conversation.serverId ?? undefined,
      messages: prompt,
      answer: {
        content: answer?.content ?? '',
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
  },
  remove: async (id) => {
    await trpc.conversation.remove.mutate({ id });
  },
};
