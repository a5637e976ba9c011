// Conversations on this device (IndexedDB): where a guest's chats are kept, and an account's while offline. An
// account's conversation deleted here while offline is remembered, so the sync deletes the account's copy too.
import { z } from 'zod';
import { CONVERSATION_LIMITS } from '../../../shared/schemas/conversation.ts';
import type { ConversationStore } from './conversation-store.ts';
import { deleteConversation, listConversations, saveConversation } from './conversations.ts';

const PendingDeletesSchema = z
  .array(z.object({ accountId: z.uuid(), id: z.uuid() }).strict())
  .max(CONVERSATION_LIMITS.readMessages);
const PENDING_DELETES_KEY = 'mesh:pending-deletes';

export type PendingDeletes = z.infer<typeof PendingDeletesSchema>;

/** Accounts' conversations deleted on this device while offline, waiting for the sync to delete them there. */
export function pendingDeletes(): PendingDeletes {
  try {
    const parsed = PendingDeletesSchema.safeParse(JSON.parse(localStorage.getItem(PENDING_DELETES_KEY) ?? '[]'));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

export function setPendingDeletes(pending: PendingDeletes): void {
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
