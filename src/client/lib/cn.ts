// Class names for the UI kit (src/client/components/ui): conditional parts joined, and a later Tailwind class
// replacing an earlier one of the same property, so a caller's className overrides a component's default.
import { type ClassValue, clsx } from 'clsx';
import { twMerge } from 'tailwind-merge';

export function cn(...inputs: ClassValue[]): string {
  return twMerge(clsx(inputs));
}
