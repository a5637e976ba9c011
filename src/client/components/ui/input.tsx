// Text fields and the native select in the kit's look: 44 px tall on a phone (touch targets), 36 px from `sm` up.
// The select stays native: the browser's own picker is the accessible one on phones, and tests drive it by value.
import type { ComponentProps } from 'react';
import { cn } from '../../lib/cn.ts';

const FIELD =
  'min-h-11 min-w-0 rounded-lg border border-border bg-background px-3 py-1.5 text-sm text-foreground focus-visible:outline-2 focus-visible:outline-primary disabled:opacity-50 sm:min-h-9';

export function Input({ className, ...props }: ComponentProps<'input'>) {
  return <input data-slot="input" className={cn(FIELD, className)} {...props} />;
}

export function NativeSelect({ className, ...props }: ComponentProps<'select'>) {
  return <select data-slot="select" className={cn(FIELD, 'pr-2', className)} {...props} />;
}

/** A label over its field (forms), or beside it with `inline`. */
export function Field({ className, inline = false, ...props }: ComponentProps<'label'> & { inline?: boolean }) {
  return (
    <label
      className={cn(inline ? 'flex items-center gap-2' : 'flex flex-col gap-1', 'text-sm', className)}
      {...props}
    />
  );
}
