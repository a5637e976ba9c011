// The dialog of the offer to move a guest's conversations into the account (move-offer.tsx); loaded lazily with
// Radix's dialog, only when there is something to offer.
import { Button } from '../../components/ui/button.tsx';
import {
  Dialog,
  DialogContent,
  DialogDescription,
  DialogFooter,
  DialogHeader,
  DialogTitle,
} from '../../components/ui/dialog.tsx';

export default function MoveOfferDialog({
  titles,
  moving,
  problem,
  move,
  close,
}: {
  titles: { id: string; title: string }[];
  moving: boolean;
  problem: string | null;
  move(): void;
  close(): void;
}) {
  const count = titles.length;
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
          {titles.map((c) => (
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
