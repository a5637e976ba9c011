// What this device shows of itself in the server's member list (before any data channel opens; job records check
// that a serving peer shares): a change goes out at once, further ones at most once per `intervalMs`, and only
// what changed (pings and hellos from peers change nothing here).
import type { Capabilities } from '../socket-contract.ts';

export class PresencePublisher {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pending = false;
  private sent = '';

  constructor(
    private readonly current: () => Capabilities,
    private readonly emit: (capabilities: Capabilities) => void,
    private readonly intervalMs = 1000,
  ) {}

  /** What the join carries: counted as sent, so the next publish sends only a change from it. */
  forJoin(): Capabilities {
    const capabilities = this.current();
    this.sent = JSON.stringify(capabilities);
    return capabilities;
  }

  /** Sends the current capabilities if they changed, at most once per interval (the last change always goes). */
  publish(): void {
    const capabilities = this.current();
    const text = JSON.stringify(capabilities);
    if (text === this.sent) return;
    if (this.timer) {
      this.pending = true;
      return;
    }
    this.sent = text;
    this.emit(capabilities);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.pending) {
        this.pending = false;
        this.publish();
      }
    }, this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = false;
  }
}
