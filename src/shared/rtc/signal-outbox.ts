// Signals waiting to go to each peer through the server: sent one at a time, each after the server acknowledged the
// last, so they arrive in the order they were made (a candidate ahead of its description is refused); candidates
// that queued up meanwhile go as one message. A rate-limited signal is sent again when the server says it may be.
import type { Ack } from '../socket-contract.ts';
import type { LinkSignal } from './peer-link.ts';

/** Candidates merged into one queued signal, at most. */
const MERGED_CANDIDATES = 64;

/** Sends one signal to `to`; null when the server did not answer (in time). */
export type RelaySignal = (to: string, data: LinkSignal) => Promise<Ack<null> | null>;

export class SignalOutbox {
  private readonly boxes = new Map<string, { queue: LinkSignal[]; sending: boolean }>();

  constructor(
    private readonly relay: RelaySignal,
    private readonly wait: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  send(to: string, signal: LinkSignal): void {
    const box = this.boxes.get(to) ?? { queue: [], sending: false };
    this.boxes.set(to, box);
    // The head of the queue may be on its way: only a later entry takes more candidates.
    const last = box.queue.length > 1 ? box.queue.at(-1) : undefined;
    if (
      last &&
      'candidates' in last &&
      'candidates' in signal &&
      last.candidates.length + signal.candidates.length <= MERGED_CANDIDATES
    )
      last.candidates.push(...signal.candidates);
    else box.queue.push(signal);
    if (box.sending) return;
    box.sending = true;
    void (async () => {
      while (box.queue.length && this.boxes.get(to) === box) {
        const result = await this.relay(to, box.queue[0] as LinkSignal);
        if (result && !result.ok && result.error === 'RATE_LIMITED') {
          await this.wait(result.retryInMs ?? 1000);
          continue;
        }
        // Delivered, or undeliverable (the peer left, or no answer in time): the link's watchdog renegotiates if needed.
        box.queue.shift();
      }
      box.sending = false;
    })();
  }

  /** Drops what waits for `peerId` (it left); a send in flight finishes, nothing after it goes. */
  forget(peerId: string): void {
    this.boxes.delete(peerId);
  }

  /** Signals waiting for `peerId`, for tests. */
  pending(peerId: string): number {
    return this.boxes.get(peerId)?.queue.length ?? 0;
  }
}
