// Shows a toast through sonner, loaded on first use (the Toaster is mounted lazily by the app shell).
export function toast(message: string, kind: 'success' | 'error' = 'success'): void {
  void import('sonner').then(({ toast: show }) => (kind === 'error' ? show.error(message) : show.success(message)));
}
