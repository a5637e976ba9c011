// A first-come, first-served wait for a free slot whose number can change while jobs wait: the server's /v1 jobs on
// one room's mesh wait here for a place at a peer (each peer takes a couple of jobs at once from one requester,
// src/shared/mesh/job-server.ts) instead of being refused while every peer is busy.

export class SlotWaitTimeout extends Error {
  override name = 'SlotWaitTimeout';
}

/** Gives a slot back; `busyForMs` when the peers refused its job as busy (see SlotQueue.#ceiling). */
export type SlotRelease = (busyForMs?: number) => void;

interface Waiter {
  grant: (release: SlotRelease) => void;
  fail: (error: Error) => void;
}

export class SlotQueue {
  #running = 0;
  readonly #waiting: Waiter[] = [];
  /**
   * After the peers refused a job as busy (their other requesters' jobs, or this side's spot checks, hold the places
   * `capacity` counted on), no more run at once than were running then, until a moment passes: waiting jobs take
   * the places that jobs here give back, instead of each asking the busy peers again (every offer counts against
   * this side's offers a minute there).
   */
  #ceiling: number | null = null;
  #lift: ReturnType<typeof setTimeout> | null = null;

  /** `capacity` is asked afresh at each grant: peers come and go. */
  constructor(private readonly capacity: () => number) {}

  /** Jobs holding a slot. */
  get running(): number {
    return this.#running;
  }

  /** Jobs waiting for one. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves with the slot's release once one is free and every earlier waiter has had its own (or, with `first`, ahead
   * of them: a job whose slot turned out to be taken elsewhere goes back to the head). Rejects with SlotWaitTimeout
   * after `waitMs`, or with the signal's reason when it aborts.
   */
  acquire(options: { waitMs: number; signal?: AbortSignal; first?: boolean }): Promise<SlotRelease> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(reasonOf(signal));
    if (this.#waiting.length === 0 && this.#running < this.#limit()) return Promise.resolve(this.#take());
    return new Promise<SlotRelease>((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', aborted);
        const at = this.#waiting.indexOf(waiter);
        if (at !== -1) this.#waiting.splice(at, 1);
      };
      const waiter: Waiter = {
        grant: (release) => {
          leave();
          resolve(release);
        },
        fail: (error) => {
          leave();
          reject(error);
        },
      };
      const aborted = () => waiter.fail(reasonOf(signal));
      const timer = setTimeout(
        () => waiter.fail(new SlotWaitTimeout(`No slot came free within ${options.waitMs} ms`)),
        options.waitMs,
      );
      signal?.addEventListener('abort', aborted, { once: true });
      if (options.first) this.#waiting.unshift(waiter);
      else this.#waiting.push(waiter);
    });
  }

  /** Grants waiting jobs the slots there are now (call when capacity may have grown). */
  pump(): void {
    for (let head = this.#waiting[0]; head && this.#running < this.#limit(); head = this.#waiting[0])
      head.grant(this.#take());
  }

  /** Ends every wait (the queue's room is going away). */
  close(error: Error): void {
    if (this.#lift) clearTimeout(this.#lift);
    for (const waiter of [...this.#waiting]) waiter.fail(error);
  }

  #limit(): number {
    const capacity = this.capacity();
    return this.#ceiling === null ? capacity : Math.min(capacity, this.#ceiling);
  }

  #take(): SlotRelease {
    this.#running++;
    let released = false;
    return (busyForMs) => {
      if (released) return;
      released = true;
      if (busyForMs !== undefined) {
        this.#ceiling = this.#running - 1;
        if (this.#lift) clearTimeout(this.#lift);
        this.#lift = setTimeout(() => {
          this.#ceiling = null;
          this.#lift = null;
          this.pump();
        }, busyForMs);
      }
      this.#running--;
      this.pump();
    };
  }
}

function reasonOf(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error('aborted');
}
