// At sign-up or login, the conversations a guest kept on this device are offered to move into the account: moved,
// they are uploaded (conversation.import, checked and capped by the server) and then appear as the account's;
// kept, they stay on this device, shown when no account is signed in here. Mounted once by the app shell, above
// every screen. A panel in the page's flow, not a modal: it covers nothing, so whatever the person came to do after
// signing in (download a model, open a room) goes on, and the offer waits for an answer.
import { useEffect, useRef, useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import { useOnline } from '../../lib/pwa.ts';
import { api, retryTransient } from '../../lib/trpc.ts';
import { chatErrorText } from './chat-errors.ts';
import { guestConversations, moveToAccount } from './conversation-sync.ts';
import type { Conversation } from './conversations.ts';

interface Offer {
  accountId: string;
  conversations: Conversation[];
}

/** The offer once the signed-in user becomes an account in this tab (a guest signed up, or someone logged in). */
function useSignInOffer(): [Offer | null, (offer: Offer | null) => void] {
  const online = useOnline();
  const me = api.auth.me.useQuery(undefined, { enabled: online, retry: retryTransient });
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
  const count = offer.conversations.length;
  return (
    <section
      className="mb-4 flex flex-col gap-2 rounded-xl border border-primary bg-surface p-4"
      data-testid="move-offer"
      aria-labelledby="move-offer-title"
    >
      <h2 id="move-offer-title" className="m-0 text-base font-semibold">
        Move {count === 1 ? 'the conversation' : `${count} conversations`} on this device into your account?
      </h2>
      <p className="m-0 text-sm text-muted">
        Moved, {count === 1 ? 'it is' : 'they are'} kept with your account, on every device you sign in on, and no
        longer on this one. Kept on this device, {count === 1 ? 'it shows' : 'they show'} here when no account is signed
        in.
      </p>
      <ul className="m-0 flex max-h-40 list-none flex-col gap-1 overflow-y-auto p-0 text-sm">
        {offer.conversations.map((c) => (
          <li key={c.id} className="truncate" data-testid="move-offer-item">
            {c.title}
          </li>
        ))}
      </ul>
      {problem && (
        <p className="error m-0 text-sm" role="alert">
          {problem}
        </p>
      )}
      <div className="flex flex-wrap justify-end gap-2">
        <Button variant="ghost" data-testid="move-offer-keep" disabled={moving} onClick={close}>
          Keep on this device
        </Button>
        <Button variant="default" data-testid="move-offer-accept" disabled={moving} onClick={move}>
          {moving ? 'Moving…' : 'Move into my account'}
        </Button>
      </div>
    </section>
  );
}
