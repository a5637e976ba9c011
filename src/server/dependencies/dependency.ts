// What the server knows of a service it depends on (the database, Redis): up or down, since when, and a way to wait for
// it. Requests that need a dependency that is down are refused at once (DependencyUnavailableError: 503 over HTTP,
// SERVICE_UNAVAILABLE over tRPC, UNAVAILABLE on the socket) instead of waiting on a connection that will not come;
// while it is down it is probed every RETRY_MS, so it is back for everyone within that of answering again.
// The README's "Health checks and outages" section says what each answer looks like.

export type DependencyName = 'database' | 'redis';

/** Probes of a dependency that is down; its recovery is noticed within this. */
const RETRY_MS = 250;
/** A probe that takes longer than this counts as failed (the dependency answers, but too slowly to serve). */
const PROBE_TIMEOUT_MS = 1000;

/**
 * A request refused, or failed, because a dependency is unavailable: retryable, and never the client's fault. It has no
 * `code` property on purpose: Prisma turns a driver error with a `code` into a PrismaClientKnownRequestError and drops
 * the rest of it, while one without reaches the caller as it was thrown.
 */
export class DependencyUnavailableError extends Error {
  override name = 'DependencyUnavailableError';
  constructor(
    readonly dependency: DependencyName,
    readonly retryAfterSeconds: number,
    options?: ErrorOptions,
  ) {
    super(
      `The ${dependency === 'database' ? 'database' : 'relay between server nodes (Redis)'} is unavailable right now; try again in ${retryAfterSeconds} s`,
      options,
    );
  }
}

/** The DependencyUnavailableError in `error` or its causes, or null: what edges (HTTP, tRPC, socket) map to 503s. */
export function unavailability(error: unknown): DependencyUnavailableError | null {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    if (current instanceof DependencyUnavailableError) return current;
  }
  return null;
}

export interface DependencyStatus {
  state: 'up' | 'down';
  /** When it entered this state. */
  since: Date;
}

export type DependencyChange =
  { name: DependencyName; state: 'down'; error: unknown } | { name: DependencyName; state: 'up'; downForMs: number };

export interface DependencyOptions {
  /** Resolves when the dependency serves (a trivial query, a PING); rejects (or outlasts `timeoutMs`) when not. */
  probe: (timeoutMs: number) => Promise<void>;
  retryMs?: number;
  probeTimeoutMs?: number;
}

export class Dependency {
  #state: DependencyStatus = { state: 'up', since: new Date() };
  #probing: Promise<boolean> | null = null;
  /** Aborted by `lost()`: a probe under way then fails at once (its command may be stuck in a client's queue). */
  #probeAbort = new AbortController();
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #listeners = new Set<(change: DependencyChange) => void>();
  readonly #retryMs: number;
  readonly #probeTimeoutMs: number;

  constructor(
    readonly name: DependencyName,
    private readonly options: DependencyOptions,
  ) {
    this.#retryMs = options.retryMs ?? RETRY_MS;
    this.#probeTimeoutMs = options.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
  }

  get up(): boolean {
    return this.#state.state === 'up';
  }

  status(): DependencyStatus {
    return { ...this.#state };
  }

  /**
   * How long a refused client should wait: a second early in an outage (it is probed four times a second), longer
   * as it lasts (up to 10 s), so a long outage is not met with a retry storm.
   */
  retryAfterSeconds(): number {
    if (this.up) return 1;
    return Math.min(10, 1 + Math.floor((Date.now() - this.#state.since.getTime()) / 10_000));
  }

  unavailableError(cause?: unknown): DependencyUnavailableError {
    return new DependencyUnavailableError(
      this.name,
      this.retryAfterSeconds(),
      cause === undefined ? undefined : { cause },
    );
  }

  /** Throws DependencyUnavailableError while the dependency is down: the fail-fast check before using it. */
  assertUp(): void {
    if (!this.up) throw this.unavailableError();
  }

  /** Subscribes to transitions (logged once each by the dependencies plugin); returns the unsubscribe function. */
  onChange(listener: (change: DependencyChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The client library says the connection is gone (Redis' `error`/`end` events): down at once, then probed. */
  lost(error: unknown): void {
    if (this.#closed) return;
    this.#probeAbort.abort(error);
    this.#markDown(error);
  }

  /**
   * Something that used the dependency failed in a way that may mean it is gone (a refused or dropped connection):
   * probe now, and mark it down only if the probe fails too (one dropped connection is not an outage).
   */
  suspect(): void {
    if (this.up) void this.check();
  }

  /** Probes now (one probe at a time; callers arriving meanwhile share it) and resolves with whether it is up. */
  check(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    this.#probing ??= this.#probe().finally(() => {
      this.#probing = null;
    });
    return this.#probing;
  }

  /** Resolves once the dependency is up (at once if it is); rejects with `signal`'s reason if that aborts first. */
  whenUp(signal?: AbortSignal): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        stop();
        reject(signal?.reason);
      };
      const stop = this.onChange((change) => {
        if (change.state !== 'up') return;
        stop();
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * `work` (something that needs the dependency and cannot be trusted to give up by itself, such as a request queued
   * in a client library's offline queue) raced against the dependency going down and against `timeoutMs`: the caller
   * gets DependencyUnavailableError as soon as either happens. Only for work whose late completion harms nothing
   * (reads, counts): its result, when it comes, is dropped.
   */
  async guard<T>(work: () => Promise<T>, timeoutMs: number): Promise<T> {
    this.assertUp();
    let stop = () => {};
    let timer: NodeJS.Timeout | undefined;
    const failed = new Promise<never>((_, reject) => {
      stop = this.onChange((change) => {
        if (change.state === 'down') reject(this.unavailableError(change.error));
      });
      timer = setTimeout(() => {
        this.suspect();
        reject(this.unavailableError(new Error(`no answer within ${timeoutMs} ms`)));
      }, timeoutMs);
    });
    const running = work();
    // The loser of the race settles later, unobserved.
    running.catch(() => {});
    try {
      return await Promise.race([running, failed]);
    } finally {
      stop();
      clearTimeout(timer);
    }
  }

  /** No more probes (the app or the connection closed); reported down from now on. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    if (this.up) this.#state = { state: 'down', since: new Date() };
  }

  async #probe(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    if (this.#probeAbort.signal.aborted) this.#probeAbort = new AbortController();
    const lost = this.#probeAbort.signal;
    let onLost = () => {};
    try {
      await Promise.race([
        this.options.probe(this.#probeTimeoutMs),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.#probeTimeoutMs} ms`)),
            this.#probeTimeoutMs,
          );
          onLost = () => reject(lost.reason);
          lost.addEventListener('abort', onLost, { once: true });
        }),
      ]);
      // An answer that raced the connection's loss proves nothing.
      if (lost.aborted) throw lost.reason;
    } catch (error) {
      if (this.#closed) return false;
      this.#markDown(error);
      return false;
    } finally {
      clearTimeout(timer);
      lost.removeEventListener('abort', onLost);
    }
    if (this.#closed) return false;
    this.#markUp();
    return true;
  }

  #markDown(error: unknown) {
    this.#scheduleRetry();
    if (!this.up) return;
    this.#state = { state: 'down', since: new Date() };
    this.#emit({ name: this.name, state: 'down', error });
  }

  #markUp() {
    clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.up) return;
    const downForMs = Date.now() - this.#state.since.getTime();
    this.#state = { state: 'up', since: new Date() };
    this.#emit({ name: this.name, state: 'up', downForMs });
  }

  #scheduleRetry() {
    if (this.#retry !== undefined || this.#closed) return;
    // unref'd: an outage never keeps a process alive that is otherwise done.
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.check();
    }, this.#retryMs).unref();
  }

  #emit(change: DependencyChange) {
    for (const listener of [...this.#listeners]) listener(change);
  }
}
