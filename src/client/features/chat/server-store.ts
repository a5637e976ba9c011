// Conversations an account keeps on the server, through the conversation procedures; what the server returns is
// mapped to the chat's shapes in conversation-wire.ts.
import { trpc } from '../../lib/trpc.ts';
import type { ConversationStore } from './conversation-store.ts';
import { conversationFromServer, heldFrom, recordOf, unsaved, withIds } from './conversation-wire.ts';
import type { ChatItem } from './conversations.ts';

export const serverStore: ConversationStore = {
  onServer: true,
  list: () => trpc.conversation.list.query(),
  async open(id) {
    return conversationFromServer(await trpc.conversation.byId.query({ id }));
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
