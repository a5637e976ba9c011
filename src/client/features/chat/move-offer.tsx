// At sign-up or login, the conversations a guest kept on this device are offered to move into the account: moved,
// they are uploaded (conversation.import, checked and capped by the server) and then appear as the account's;
// kept, they stay on this device, shown when no account is signed in here. Mounted once by the app shell.
import { Suspense, lazy, useEffect, useRef, useState } from 'react';
import { useOnline } from '../../lib/pwa.ts';
import { api } from '../../lib/trpc.ts';
import { chatErrorText } from './chat-errors.ts';
import { guestConversations, moveToAccount } from './conversation-store.ts';
import type { Conversation } from './conversations.ts';

// Radix's dialog comes only when there is something to offer (bench/pwa.ts: initial JS under 200 KB gzip).
const MoveOfferDialog = lazy(() => import('./move-offer-dialog.tsx'));

interface Offer {
  accountId: string;
  conversations: Conversation[];
}

/** The offer once the signed-in user becomes an account in this tab (a guest signed up, or someone logged in). */
function useSignInOffer(): [Offer | null, (offer: Offer | null) => void] {
  const online = useOnline();
  const me = api.auth.me.useQuery(undefined, { enabled: online, retry: false });
  const [offer, setOffer] = useState<Offer | null>(null);
  /** What `me` was before: undefined until the server first answered in this tab. */
  const before = useRef<'ACCOUNT' | 'GUEST' | null | undefined>(undefined);
  const kind = me.isSuccess ? (me.data?.kind ?? null) : undefined;
  const accountId = me.data?.kind === 'ACCOUNT' ? me.data.id : null;
  useEffect(() => {
    if (kind === undefined) return;
    const was = before.current;
    before.current = kind;
    if (kind !== 'ACCOUNT' || !accountId || was === undefined || was === 'ACCOUNT') return;
    let current = true;
    void guestConversations().then(
      (conversations) => current && conversations.length > 0 && setOffer({ accountId, conversations }),
      () => {},
    );
    return () => {
      current = false;
    };
  }, [kind, accountId]);
  return [offer, setOffer];
}

export function MoveOffer() {
  const [offer, setOffer] = useSignInOffer();
  const [moving, setMoving] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const utils = api.useUtils();
  if (!offer) return null;
  const close = () => {
    setOffer(null);
    setProblem(null);
  };
  const move = () => {
    setMoving(true);
    setProblem(null);
    moveToAccount(offer.accountId, offer.conversations)
      .then(
        async () => {
          await utils.conversation.invalidate();
          close();
        },
        // Whatever moved is the account's already; the rest waits on this device and goes with the next sync.
        (cause: unknown) =>
          setProblem(`Not everything could be moved: ${chatErrorText(cause)} What did not move stays on this device.`),
      )
      .finally(() => setMoving(false));
  };
  return (
    <Suspense>
      <MoveOfferDialog
        titles={offer.conversations.map(({ id, title }) => ({ id, title }))}
        moving={moving}
        problem={problem}
        move={move}
        close={close}
      />
    </Suspense>
  );
}
