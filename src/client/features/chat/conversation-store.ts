// Where conversations are kept: on this device (IndexedDB, device-store.ts) for guests, on the server
// (server-store.ts) for accounts. The chat screen talks to this interface only; conversation-wire.ts maps between the
// two shapes, and conversation-sync.ts sends what was kept here while offline to the account.
import type { AnswerRecord, Conversation } from './conversations.ts';

export type { AnswerRecord };
// The sync's entry points, for callers that reach them through the store (use-chat.ts).
export { knownAccount, syncOfflineConversations } from './conversation-sync.ts';

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
