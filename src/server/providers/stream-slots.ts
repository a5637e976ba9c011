// Per-user cap on concurrent upstream chats: one person cannot hold every provider connection (or run up
// the bill) by opening streams in many tabs.
export class StreamSlots {
  private readonly active = new Map<string, number>();

  constructor(private readonly perUser: number) {}

  /** A release function, or null when the user already has `perUser` chats running. */
  acquire(userId: string): (() => void) | null {
    const count = this.active.get(userId) ?? 0;
    if (count >= this.perUser) return null;
    this.active.set(userId, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.active.get(userId) ?? 1) - 1;
      if (left > 0) this.active.set(userId, left);
      else this.active.delete(userId);
    };
  }

  count(userId: string): number {
    return this.active.get(userId) ?? 0;
  }
}
