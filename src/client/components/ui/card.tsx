// Card: a bordered surface for one thing (a model, a panel of settings); `asChild` to make it an <article> or <section>.
import { Slot } from '@radix-ui/react-slot';
import type { ComponentProps } from 'react';
import { cn } from '../../lib/cn.ts';

export function Card({ className, asChild = false, ...props }: ComponentProps<'div'> & { asChild?: boolean }) {
  const Component = asChild ? Slot : 'div';
  return (
    <Component
      data-slot="card"
      className={cn('flex min-w-0 flex-col gap-3 rounded-xl border border-border bg-surface p-4', className)}
      {...props}
    />
  );
}

export function CardHeader({ className, ...props }: ComponentProps<'header'>) {
  return <header className={cn('flex min-w-0 flex-wrap items-center gap-2', className)} {...props} />;
}

export function CardTitle({ className, ...props }: ComponentProps<'h2'>) {
  return <h2 className={cn('m-0 min-w-0 grow text-base font-semibold', className)} {...props} />;
}
