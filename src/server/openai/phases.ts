// Where a request's time goes, phase by phase, as a Server-Timing header (`key;dur=2.1, route;dur=0.3, ...`): each
// phase lasts from the mark before it to its own mark, the first from the request's arrival (what Fastify's hooks
// and the body's parsing took, `pre`). Only durations: nothing about the request itself.
import { performance } from 'node:perf_hooks';

export class Phases {
  readonly #durations: Array<[string, number]>;
  #last = performance.now();

  /** `elapsedMs`: the request's age when the handler began (Fastify's `reply.elapsedTime`). */
  constructor(elapsedMs: number) {
    this.#durations = [['pre', elapsedMs]];
  }

  /** Ends the phase named `name` now. */
  mark(name: string): void {
    const now = performance.now();
    this.#durations.push([name, now - this.#last]);
    this.#last = now;
  }

  header(): string {
    return this.#durations.map(([name, ms]) => `${name};dur=${ms.toFixed(1)}`).join(', ');
  }
}
