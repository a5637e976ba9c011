// At sign-up or login, the conversations a guest kept on this device are offered to move into the account: moved,
// they are uploaded (conversation.import, checked and capped by the server) and then appear as the account's;
// kept, they stay on this device, shown when no account is signed in here. Mounted once by the app shell.
import { useEffect, useRef, useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import {
  Dialog,
  DialogContent,
  DialogDescription,
  DialogFooter,
  DialogHeader,
  DialogTitle,
} from '../../components/ui/dialog.tsx';
import { useOnline } from '../../lib/pwa.ts';
import { api } from '../../lib/trpc.ts';
import { chatErrorText } from './chat-errors.ts';
import { guestConversations, moveToAccount } from './conversation-store.ts';
import type { Conversation } from './conversations.ts';

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

export default function MoveOffer() {
  const [offer, setOffer] = useSignInOffer();
  const [moving, setMoving] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const utils = api.useUtils();
  if (!offer) return null;
  const count = offer.conversations.length;
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
    <Dialog open onOpenChange={(open) => !open && !moving && close()}>
      <DialogContent data-testid="move-offer">
        <DialogHeader>
          <DialogTitle>
            Move {count === 1 ? 'the conversation' : `${count} conversations`} on this device into your account?
          </DialogTitle>
          <DialogDescription>
            Moved, {count === 1 ? 'it is' : 'they are'} kept with your account, on every device you sign in on, and no
            longer on this one. Kept on this device, {count === 1 ? 'it shows' : 'they show'} here when no account is
            signed in.
          </DialogDescription>
        </DialogHeader>
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
        <DialogFooter>
          <Button variant="ghost" data-testid="move-offer-keep" disabled={moving} onClick={close}>
            Keep on this device
          </Button>
          <Button variant="default" data-testid="move-offer-accept" disabled={moving} onClick={move}>
            {moving ? 'Moving…' : 'Move into my account'}
          </Button>
        </DialogFooter>
      </DialogContent>
    </Dialog>
  );
}
