// The notice before a first prompt goes to a peer in a room (use-peer-notice.ts); loaded lazily with Radix's dialog.
import { Button } from '../../components/ui/button.tsx';
import {
  Dialog,
  DialogContent,
  DialogDescription,
  DialogFooter,
  DialogHeader,
  DialogTitle,
} from '../../components/ui/dialog.tsx';
import type { PeerNotice } from './use-peer-notice.ts';

export default function PeerNoticeDialog({ notice }: { notice: PeerNotice }) {
  return (
    <Dialog open onOpenChange={(open) => !open && notice.cancel()}>
      <DialogContent data-testid="mesh-notice">
        <DialogHeader>
          <DialogTitle>A peer in {notice.room} will read this</DialogTitle>
          <DialogDescription>
            The peer that answers runs the model on its own device: it receives your prompt, this conversation and the
            answer in plain text. Send only what you would show the people in this room.
          </DialogDescription>
        </DialogHeader>
        <DialogFooter>
          <Button variant="ghost" data-testid="mesh-notice-cancel" onClick={notice.cancel}>
            Cancel
          </Button>
          <Button variant="default" data-testid="mesh-notice-accept" onClick={notice.accept}>
            Continue
          </Button>
        </DialogFooter>
      </DialogContent>
    </Dialog>
  );
}
