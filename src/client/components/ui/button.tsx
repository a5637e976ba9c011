// Button in the shadcn/ui manner: variants by class, `asChild` to style a link as a button. Touch targets are 44 px
// on narrow screens (docs: issue 13's phone layout) and shrink to 36 px from the `sm` breakpoint up.
import { Slot } from '@radix-ui/react-slot';
import { type VariantProps, cva } from 'class-variance-authority';
import type { ComponentProps } from 'react';
import { cn } from '../../lib/cn.ts';

export const buttonVariants = cva(
  'inline-flex shrink-0 items-center justify-center gap-2 whitespace-nowrap rounded-lg border text-sm font-medium transition-colors focus-visible:outline-2 focus-visible:outline-primary disabled:pointer-events-none disabled:opacity-50 [&_svg]:size-4 [&_svg]:shrink-0',
  {
    variants: {
      variant: {
        default: 'border-primary bg-primary text-primary-foreground hover:opacity-90',
        secondary: 'border-border bg-surface text-foreground hover:border-primary',
        ghost: 'border-transparent bg-transparent text-foreground hover:bg-surface',
        destructive: 'border-destructive bg-transparent text-destructive hover:bg-surface',
        link: 'border-transparent bg-transparent p-0 text-primary underline-offset-4 hover:underline',
      },
      size: {
        default: 'min-h-11 px-4 py-2 sm:min-h-9',
        sm: 'min-h-11 px-3 text-xs sm:min-h-8',
        icon: 'size-11 p-0 sm:size-9',
      },
    },
    defaultVariants: { variant: 'secondary', size: 'default' },
  },
);

export function Button({
  className,
  variant,
  size,
  asChild = false,
  type = 'button',
  ...props
}: ComponentProps<'button'> & VariantProps<typeof buttonVariants> & { asChild?: boolean }) {
  const Component = asChild ? Slot : 'button';
  return (
    <Component
      data-slot="button"
      className={cn(buttonVariants({ variant, size }), className)}
      {...(asChild ? {} : { type })}
      {...props}
    />
  );
}
