// One peer's go at a mesh job, as an explicit state machine: offered -> accepted -> settled (or offered ->
// settled). It continues after the tokens it is given, ends when the peer finishes, refuses, fails, stalls,
// leaves or runs past the job's deadline, and cancels the peer's work whenever it gives up on a job it accepted.
import type { JobRejectReason, JobSampling, ModelRef, OutgoingPeerMessage, PeerMessage } from '../peer-protocol.ts';
import type { EngineMessage } from '../engine-protocol.ts';
import type { GeneratedToken } from './engine-gate.ts';
import { measuredSpeed } from './peer-ranking.ts';

/** A peer's queue position stretches the wait for its first token by at most this many stall periods. */
const MAX_QUEUE_GRACE = 4;

export type AttemptResult =
  | { kind: 'done'; done: Extract<PeerMessage, { type: 'job:done' }> }
  /** `refusal`: the peer refused the offer, and why (a busy peer is not a faulty one). */
  | { kind: 'failed'; reason: string; accepted: boolean; refusal?: JobRejectReason; overflow?: true }
  | { kind: 'cancelled' };

export type AttemptState = 'offered' | 'accepted' | 'settled';

export interface JobAttemptOptions {
  attemptId: string;
  send: (message: OutgoingPeerMessage) => Promise<boolean>;
  job: { model: ModelRef; messages: EngineMessage[]; sampling: JobSampling };
  /** What came before this attempt (earlier peers' tokens); the attempt appends to it in order. */
  tokens: GeneratedToken[];
  /** Time left for the whole job: the attempt ends there however the peer paces its tokens. */
  deadlineMs: number;
  purpose: 'answer' | 'check';
  /** No token for this long once accepted (before the first: this times the queue position, capped): stalled. */
  stallMs: number;
  /** Neither accepted nor refused within this: passed over. */
  acceptTimeoutMs: number;
  onAccepted?: () => void;
  onToken?: (token: GeneratedToken) => void;
  /** The speed this side measured from offer to done, when the attempt finished. */
  onMeasured?: (tokensPerSecond: number | null) => void;
}

export class JobAttempt {
  #state: AttemptState = 'offered';
  #stallTimer: ReturnType<typeof setTimeout> | null = null;
  #deadlineTimer: ReturnType<typeof setTimeout> | null = null;
  #resolve: (result: AttemptResult) => void = () => {};
  readonly #offeredAt = Date.now();
  readonly #before: number;
  /** Settles once, with how the attempt ended. */
  readonly result: Promise<AttemptResult>;

  constructor(private readonly options: JobAttemptOptions) {
    this.#before = options.tokens.length;
    this.result = new Promise<AttemptResult>((resolve) => (this.#resolve = resolve));
  }

  get state(): AttemptState {
    return this.#state;
  }

  /** Sends the offer and starts the clocks. */
  start(): Promise<AttemptResult> {
    const { options } = this;
    this.#deadlineTimer = setTimeout(
      () => this.#fail(`did not finish within ${Math.round(options.deadlineMs)} ms`),
      options.deadlineMs,
    );
    this.#arm(options.acceptTimeoutMs, 'did not answer the offer');
    options
      .send({
        type: 'job:offer',
        jobId: options.attemptId,
        model: options.job.model,
        messages: options.job.messages,
        sampling: options.job.sampling,
        prefix: options.tokens.map((token) => token.tokenId),
        deadlineMs: Math.max(1, Math.round(options.deadlineMs)),
        purpose: options.purpose,
      })
      .then(
        (sent) => {
          if (!sent) this.#fail('its channel is closed');
        },
        (error: unknown) =>
          this.#fail(`the offer could not be sent: ${error instanceof Error ? error.message : String(error)}`),
      );
    return this.result;
  }

  /** A message from the peer about this attempt. */
  handle(message: PeerMessage): void {
    if (this.#state === 'settled') return;
    switch (message.type) {
      case 'job:accept':
        if (this.#state === 'accepted') return;
        this.#state = 'accepted';
        this.options.onAccepted?.();
        // Waiting in its queue earns a little more time for the first token, not unbounded time.
        this.#arm(
          this.options.stallMs * Math.min(1 + message.position, MAX_QUEUE_GRACE),
          'accepted but sent no token in time',
        );
        return;
      case 'job:reject':
        return this.#fail(`refused (${message.reason}: ${message.message})`, message.reason);
      case 'job:token': {
        if (this.#state !== 'accepted') return this.#fail('sent tokens for a job it had not accepted');
        const { tokens } = this.options;
        if (message.index !== tokens.length)
          return this.#fail(`sent token ${message.index} where ${tokens.length} was due`);
        this.#arm(this.options.stallMs, 'stalled mid-answer');
        const token = { index: message.index, tokenId: message.tokenId, text: message.text };
        tokens.push(token);
        this.options.onToken?.(token);
        return;
      }
      case 'job:done':
        if (this.#state !== 'accepted') return this.#fail('finished a job it had not accepted');
        // Nobody asked it to stop: an answer it cut short is not finished.
        if (message.reason === 'interrupted') return this.#fail('stopped before the end of the answer');
        // `length` may come before maxNewTokens when the context is full; the spot checks catch an answer cut short.
        this.options.onMeasured?.(
          measuredSpeed(this.options.tokens.length - this.#before, this.#offeredAt, Date.now()),
        );
        return this.#settle({ kind: 'done', done: message });
      case 'job:error':
        if (message.code === 'CONTEXT_OVERFLOW' && this.#state === 'accepted') return this.#overflow(message.message);
        return this.#fail(`${message.code}: ${message.message}`);
      default:
        return;
    }
  }

  /** The peer left the room or its channel closed. */
  left(): void {
    this.#fail('left the room');
  }

  /** The requester stopped the job: the peer is told to stop too. */
  cancel(): void {
    if (this.#state === 'settled') return;
    void this.options.send({ type: 'job:cancel', jobId: this.options.attemptId });
    this.#settle({ kind: 'cancelled' });
  }

  #fail(reason: string, refusal?: JobRejectReason): void {
    if (this.#state === 'settled') return;
    const accepted = this.#state === 'accepted';
    if (accepted) void this.options.send({ type: 'job:cancel', jobId: this.options.attemptId });
    this.#settle({ kind: 'failed', reason, accepted, ...(refusal && !accepted ? { refusal } : {}) });
  }

  /** The job cannot fit the model's context: not this peer's fault, and no other peer of the model could run it. */
  #overflow(message: string): void {
    if (this.#state === 'settled') return;
    this.#settle({ kind: 'failed', reason: message, accepted: true, overflow: true });
  }

  #arm(ms: number, reason: string): void {
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = setTimeout(() => this.#fail(reason), ms);
  }

  #settle(result: AttemptResult): void {
    this.#state = 'settled';
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    this.#resolve(result);
  }
}
