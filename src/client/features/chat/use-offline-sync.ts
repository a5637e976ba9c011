// Back online and signed in: conversations kept on this device while offline go to the account.
import { type Dispatch, type SetStateAction, useEffect, useState } from 'react';
import { chatErrorText } from './chat-errors.ts';
import { syncOfflineConversations } from './conversation-sync.ts';
import type { Conversation } from './conversations.ts';

/** Runs the sync whenever this account is signed in and online; returns whether it is under way. */
export function useOfflineSync(
  accountId: string | null,
  online: boolean,
  setConversation: Dispatch<SetStateAction<Conversation>>,
  refreshHistory: () => void,
  setError: (error: string) => void,
): boolean {
  const [syncing, setSyncing] = useState(false);
  useEffect(() => {
    if (!accountId || !online) return;
    let cancelled = false;
    // Starting the sync is this effect's job; the flag shows it is under way.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    setSyncing(true);
    syncOfflineConversations(accountId)
      .then(
        (synced) => {
          if (cancelled) return;
          setConversation((c) =>
            synced.has(c.id) ? { ...c, serverId: synced.get(c.id) ?? null, syncFor: undefined } : c,
          );
          refreshHistory();
        },
        (cause: unknown) =>
          !cancelled &&
          setError(
            `Conversations kept on this device while offline could not be saved to your account yet: ${chatErrorText(cause)}`,
          ),
      )
      .finally(() => !cancelled && setSyncing(false));
    return () => {
      cancelled = true;
    };
  }, [accountId, online, refreshHistory, setConversation, setError]);

  return syncing;
}
