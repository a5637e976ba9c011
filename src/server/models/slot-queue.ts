// A cap on work running at once (DOWNLOAD_CONCURRENCY): the rest wait in order, and a waiter whose signal aborts
// leaves the queue without taking a slot.
export class SlotQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** How many slots are taken. */
  get busy(): number {
    return this.running;
  }

  async acquire(signal: AbortSignal): Promise<void> {
    if (this.running < this.limit) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal.removeEventListener('abort', onAbort);
        this.running++;
        resolve();
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(wake), 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(wake);
    });
  }

  release(): void {
    this.running--;
    this.waiting.shift()?.();
  }
}
