// Sheet: a Radix dialog that slides in from an edge, the phone's drawer (the conversation list at 390 px).
import * as DialogPrimitive from '@radix-ui/react-dialog';
import { XIcon } from 'lucide-react';
import type { ComponentProps } from 'react';
import { cn } from '../../lib/cn.ts';
import { DialogOverlay } from './dialog.tsx';

export const Sheet = DialogPrimitive.Root;
export const SheetTrigger = DialogPrimitive.Trigger;
export const SheetClose = DialogPrimitive.Close;
export const SheetTitle = DialogPrimitive.Title;
export const SheetDescription = DialogPrimitive.Description;

const SIDES = {
  left: 'inset-y-0 left-0 h-full w-[min(20rem,85vw)] border-r',
  right: 'inset-y-0 right-0 h-full w-[min(20rem,85vw)] border-l',
  bottom: 'inset-x-0 bottom-0 max-h-[85dvh] border-t rounded-t-xl',
} as const;

export function SheetContent({
  side = 'left',
  className,
  children,
  ...props
}: ComponentProps<typeof DialogPrimitive.Content> & { side?: keyof typeof SIDES }) {
  return (
    <DialogPrimitive.Portal>
      <DialogOverlay />
      <DialogPrimitive.Content
        className={cn(
          'fixed z-50 flex flex-col gap-3 overflow-y-auto border-border bg-background p-4 text-foreground shadow-lg',
          SIDES[side],
          className,
        )}
        {...props}
      >
        {children}
        <DialogPrimitive.Close
          aria-label="Close"
          className="absolute top-2 right-2 inline-flex size-11 items-center justify-center rounded-lg border-transparent bg-transparent p-0"
        >
          <XIcon className="size-4" />
        </DialogPrimitive.Close>
      </DialogPrimitive.Content>
    </DialogPrimitive.Portal>
  );
}
