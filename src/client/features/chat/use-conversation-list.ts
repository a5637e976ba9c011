// The chat's list of kept conversations, out of useChat: the list (or a search of it), and opening, renaming,
// importing and removing conversations where they are kept.
import { type Dispatch, type SetStateAction, useCallback, useEffect, useState } from 'react';
import { chatErrorText } from './chat-errors.ts';
import { type ConversationStore, type ConversationSummary, syncOfflineConversations } from './conversation-store.ts';
import { readConversationFile } from './conversation-file.ts';
import { type Conversation, saveConversation } from './conversations.ts';
import type { ChatSettings } from './settings.ts';

export interface ConversationListContext {
  store: ConversationStore;
  accountId: string | null;
  busy: boolean;
  settings: ChatSettings;
  setConversation: Dispatch<SetStateAction<Conversation>>;
  setError: (error: string | null) => void;
}

export function useConversationList(context: ConversationListContext) {
  const { store, accountId, busy, settings, setConversation, setError } = context;
  const [history, setHistory] = useState<ConversationSummary[]>([]);
  const [query, setQuery] = useState('');
  const refreshHistory = useCallback(
    () => void (query.trim() ? store.search(query.trim()) : store.list()).then(setHistory, () => setHistory([])),
    [store, query],
  );
  useEffect(refreshHistory, [refreshHistory]);
  const fail = (cause: unknown) => setError(chatErrorText(cause));

  return {
    history,
    refreshHistory,
    query,
    setQuery,
    open(id: string) {
      if (busy) return;
      void store.open(id).then((opened) => setConversation({ ...opened, settings: opened.settings ?? settings }), fail);
    },
    rename(id: string, title: string) {
      const name = title.trim();
      if (!name) return;
      void store.rename(id, name).then(() => {
        setConversation((c) => (c.id === id || c.serverId === id ? { ...c, title: name, titled: true } : c));
        refreshHistory();
      }, fail);
    },
    /** Imports a conversation file (checked in full first) and opens it; an account's goes to the account. */
    importFile(file: File) {
      if (busy) return;
      void (async () => {
        const imported = await readConversationFile(file);
        if (store.onServer && accountId) {
          // Saved turn by turn, as a conversation kept here while offline is.
          await saveConversation({ ...imported, syncFor: { accountId, synced: 0 } });
          const synced = await syncOfflineConversations(accountId);
          const serverId = synced.get(imported.id);
          setConversation({ ...imported, serverId: serverId ?? null, settings });
        } else {
          await saveConversation(imported);
          setConversation({ ...imported, settings });
        }
        setError(null);
        refreshHistory();
      })().catch(fail);
    },
    removeConversation(id: string) {
      void store.remove(id).then(refreshHistory, fail);
    },
  };
}
