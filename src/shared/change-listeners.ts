// Listeners told that something changed, and nothing more: they read what they need (React's useSyncExternalStore
// subscribes this way). The mesh's node, server, requester and room each keep one.
export class ChangeListeners {
  private readonly listeners = new Set<() => void>();

  /** Adds `listener`; returns the unsubscribe. */
  add(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify(): void {
    for (const listener of this.listeners) listener();
  }
}
