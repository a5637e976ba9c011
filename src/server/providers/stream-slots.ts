// Caps on concurrent upstream chats: per person, so one cannot hold every provider connection (or run up the
// bill) by opening streams in many tabs; and per server process, so many people (or many guests made by one)
// together cannot either.
export interface StreamLimits {
  perUser: number;
  total: number;
}

export type SlotGrant = { ok: true; release(): void } | { ok: false; refused: 'user' | 'server' };

export class StreamSlots {
  private readonly active = new Map<string, number>();
  private running = 0;

  constructor(private readonly limits: StreamLimits) {}

  /** A slot with its release function, or which cap refused it (the person's own is reported first). */
  acquire(userId: string): SlotGrant {
    const count = this.active.get(userId) ?? 0;
    if (count >= this.limits.perUser) return { ok: false, refused: 'user' };
    if (this.running >= this.limits.total) return { ok: false, refused: 'server' };
    this.active.set(userId, count + 1);
    this.running++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.running--;
      const left = (this.active.get(userId) ?? 1) - 1;
      if (left > 0) this.active.set(userId, left);
      else this.active.delete(userId);
    };
    return { ok: true, release };
  }

  count(userId: string): number {
    return this.active.get(userId) ?? 0;
  }
}
