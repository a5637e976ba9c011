// "Remove all models from this device", behind a confirmation (Radix dialog: focus trapped, Esc cancels).
import { Trash2Icon } from 'lucide-react';
import { useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import {
  Dialog,
  DialogClose,
  DialogContent,
  DialogDescription,
  DialogFooter,
  DialogHeader,
  DialogTitle,
  DialogTrigger,
} from '../../components/ui/dialog.tsx';
import { formatBytes } from '../../lib/device-cache.ts';

export default function RemoveAllDialog({
  models,
  bytes,
  onConfirm,
}: {
  /** How many models' files are on this device, and what they take. */
  models: number;
  bytes: number;
  onConfirm(): Promise<void>;
}) {
  const [open, setOpen] = useState(false);
  const [removing, setRemoving] = useState(false);
  return (
    <Dialog open={open} onOpenChange={setOpen}>
      <DialogTrigger asChild>
        <Button variant="destructive" data-testid="models-remove-all" disabled={models === 0}>
          <Trash2Icon />
          Remove all from device
        </Button>
      </DialogTrigger>
      <DialogContent data-testid="models-remove-all-dialog">
        <DialogHeader>
          <DialogTitle>Remove all models from this device?</DialogTitle>
          <DialogDescription>
            {models === 1 ? 'One model' : `${models} models`} ({formatBytes(bytes)}) and ONNX Runtime&apos;s files go. A
            model loaded now stays loaded until you unload it or close the app; to use one again later, it is downloaded
            again.
          </DialogDescription>
        </DialogHeader>
        <DialogFooter>
          <DialogClose asChild>
            <Button>Keep them</Button>
          </DialogClose>
          <Button
            variant="destructive"
            data-testid="models-remove-all-confirm"
            disabled={removing}
            onClick={() => {
              setRemoving(true);
              void onConfirm().finally(() => {
                setRemoving(false);
                setOpen(false);
              });
            }}
          >
            Remove all
          </Button>
        </DialogFooter>
      </DialogContent>
    </Dialog>
  );
}
