// Toasts (sonner, as shadcn/ui uses): short confirmations ("Copied") announced politely, themed with the app.
// The app mounts <Toaster> lazily; `toast` loads sonner on first use, so neither is in the initial JS.
import { Toaster as Sonner } from 'sonner';
import type { ResolvedTheme } from '../../lib/theme.ts';

export function Toaster({ theme }: { theme: ResolvedTheme }) {
  return (
    <Sonner
      theme={theme}
      position="bottom-center"
      toastOptions={{
        style: { background: 'var(--surface)', color: 'var(--text)', border: '1px solid var(--border)' },
      }}
    />
  );
}
