// How a /v1 job's text reaches the route, for whole-model mesh jobs (mesh-chat.ts) and pipeline jobs
// (pipeline-chat.ts) alike: the job hands text over by callback; the route reads it through an async generator and
// asks for the next event only once it has written the last. The job's records wait behind a gate opened once every
// text is with the route: the embedded database runs its queries on this thread, and a record's start written beside
// the answer held its tokens back by 55 to 130 ms under load (bench/README.md, issue 14).

/** The gate a job's records wait behind (serviceRecorder's `ready`): `open` opens it a turn of the event loop later. */
export function recordsGate(): { ready: Promise<void>; open: () => void } {
  let resolve: () => void = () => {};
  const ready = new Promise<void>((done) => (resolve = done));
  // A turn of the event loop first, for the route's stream to write what it was handed.
  return { ready, open: () => setImmediate(resolve) };
}

/** One job's text, from its callbacks to the route. */
export class AnswerTexts {
  private readonly pending: string[] = [];
  private wake: (() => void) | null = null;
  private given = 0;
  /** The job's tokens stopped (before its records): once its last text is with the route, they may be written. */
  private over = false;
  private done = false;

  /** The job is over, its outcome known: the reader returns once it has every text. */
  get settled(): boolean {
    return this.done;
  }

  push(text: string): void {
    this.pending.push(text);
    this.wake?.();
  }

  end(): void {
    this.over = true;
    this.wake?.();
  }

  settle(): void {
    this.done = true;
    this.wake?.();
  }

  /**
   * The texts as the route asks for them, until the job is settled; `drained` is called each time the reader is
   * waiting with every text given once the job's tokens stopped (it opens the records' gate, so it may run twice).
   */
  async *read(drained: () => void): AsyncGenerator<string> {
    for (;;) {
      if (this.pending.length > 0) {
        // The first text goes at once. Later ones wait for the rest of this turn of the event loop, so that tokens
        // whose messages came in together (the server busy, or the peer faster than it) leave as one chunk and one
        // write: each write costs the server a system call and the client a read and a parse (bench/README.md,
        // issue 14). Nothing waits for a token that has not arrived.
        if (this.given++ > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        const text = this.pending.join('');
        this.pending.length = 0;
        yield text;
        continue;
      }
      if (this.over) drained();
      if (this.done) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }
}
