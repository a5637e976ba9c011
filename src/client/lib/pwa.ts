// Service worker registration (workbox-window), the update prompt, the install prompt and online state, as
// small external stores React reads with useSyncExternalStore.
import { useSyncExternalStore } from 'react';
import { Workbox } from 'workbox-window';

function store<T>(initial: T) {
  let value = initial;
  const listeners = new Set<() => void>();
  return {
    get: () => value,
    set(next: T) {
      value = next;
      listeners.forEach((listener) => listener());
    },
    subscribe(listener: () => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** A new version is installed and waiting; calling it activates the new version and reloads. */
const updateReady = store<(() => void) | null>(null);
interface InstallPromptEvent extends Event {
  prompt(): Promise<void>;
  userChoice: Promise<{ outcome: 'accepted' | 'dismissed' }>;
}
const installPrompt = store<InstallPromptEvent | null>(null);
const online = store<boolean>(typeof navigator === 'undefined' ? true : navigator.onLine);

export function registerServiceWorker(): void {
  window.addEventListener('online', () => online.set(true));
  window.addEventListener('offline', () => online.set(false));
  window.addEventListener('beforeinstallprompt', (event) => {
    event.preventDefault();
    installPrompt.set(event as InstallPromptEvent);
  });
  window.addEventListener('appinstalled', () => installPrompt.set(null));
  if (!('serviceWorker' in navigator) || import.meta.env.DEV) return;
  const workbox = new Workbox('/sw.js', { scope: '/' });
  // A new build installed while this page runs: ask before switching (an answer may be streaming). Model files
  // live in their own caches, which a new version leaves alone.
  workbox.addEventListener('waiting', () => {
    updateReady.set(() => {
      workbox.addEventListener('controlling', () => window.location.reload());
      workbox.messageSkipWaiting();
    });
  });
  void workbox.register();
}

export function useUpdateReady() {
  return useSyncExternalStore(updateReady.subscribe, updateReady.get);
}

export function useInstallPrompt() {
  const event = useSyncExternalStore(installPrompt.subscribe, installPrompt.get);
  return event
    ? async () => {
        await event.prompt();
        await event.userChoice;
        installPrompt.set(null);
      }
    : null;
}

export function useOnline() {
  return useSyncExternalStore(online.subscribe, online.get);
}
