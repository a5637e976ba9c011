// The serving side of mesh inference: jobs offered by peers in the room, run on this device's engine when it
// shares its compute. Off by default; one job at a time through the engine gate (local chat first), a bounded
// queue, per-peer caps on outstanding jobs and on offers per minute, and deadlines.
import type { JobOffer, JobRejectReason, OutgoingPeerMessage } from '../peer-protocol.ts';
import type { EngineGate, MeshEngine, RunningGeneration } from './engine-gate.ts';
import { ChangeListeners } from '../change-listeners.ts';

export interface JobServerOptions {
  /** Jobs accepted and waiting for the engine, from all peers together. */
  queueLimit: number;
  /** Jobs one peer may have accepted or running at once. */
  perPeerOutstanding: number;
  /** Offers one peer may make per minute. */
  perPeerPerMinute: number;
  /** Test only: from the fourth token on, report wrong token ids (a dishonest peer for the spot-check tests). */
  corruptTokens?: boolean;
}

export const DEFAULT_JOB_SERVER_OPTIONS: JobServerOptions = {
  queueLimit: 4,
  perPeerOutstanding: 2,
  perPeerPerMinute: 60,
};

export interface ServedJobStats {
  jobId: string;
  peerId: string;
  purpose: JobOffer['purpose'];
  outcome: 'done' | 'cancelled' | 'error';
  tokensOut: number;
  tokensPerSecond: number;
}

interface Job {
  offer: JobOffer;
  peerId: string;
  send: (message: OutgoingPeerMessage) => Promise<boolean>;
  cancelled: boolean;
  generation: RunningGeneration | null;
  stopReason: 'cancel' | 'deadline' | 'preempt' | null;
  receivedAt: number;
}

export class JobServer {
  sharing = false;
  private readonly jobs = new Map<string, Job>();
  private readonly offersByPeer = new Map<string, number[]>();
  /** Jobs finished, for the status line and the room's panel. */
  readonly served: ServedJobStats[] = [];
  private readonly listeners = new ChangeListeners();

  /** Calls `listener` after its queue or its served jobs change; returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    return this.listeners.add(listener);
  }

  private changed(): void {
    this.listeners.notify();
  }

  constructor(
    private readonly engine: MeshEngine,
    private readonly gate: EngineGate,
    private readonly options: JobServerOptions = DEFAULT_JOB_SERVER_OPTIONS,
  ) {}

  /** Jobs accepted and not finished (waiting or running). */
  outstanding(): number {
    return this.jobs.size;
  }

  private reject(send: Job['send'], jobId: string, reason: JobRejectReason, message: string): void {
    void send({ type: 'job:reject', jobId, reason, message });
  }

  /** An offer from `peerId`; `send` answers that peer. */
  offer(peerId: string, offer: JobOffer, send: Job['send']): void {
    const { jobId } = offer;
    const now = Date.now();
    // Offers in the last minute, kept to the cap (a flood costs nothing more to count).
    const recent = (this.offersByPeer.get(peerId) ?? []).filter((at) => now - at < 60_000);
    if (recent.length <= this.options.perPeerPerMinute) recent.push(now);
    this.offersByPeer.set(peerId, recent);
    const loaded = this.engine.loaded();
    const mine = [...this.jobs.values()].filter((job) => job.peerId === peerId).length;
    const waiting = [...this.jobs.values()].filter((job) => !job.generation).length;
    if (this.jobs.has(jobId)) return this.reject(send, jobId, 'INVALID', 'This job id is already in use');
    if (!this.sharing) return this.reject(send, jobId, 'NOT_SHARING', 'This peer does not share its compute now');
    if (!loaded || loaded.model.sha256 !== offer.model.sha256)
      return this.reject(send, jobId, 'MODEL_NOT_LOADED', `${offer.model.id} (this exact file) is not loaded here`);
    if (recent.length > this.options.perPeerPerMinute)
      return this.reject(
        send,
        jobId,
        'RATE_LIMITED',
        `At most ${this.options.perPeerPerMinute} jobs a minute from one peer`,
      );
    if (mine >= this.options.perPeerOutstanding)
      return this.reject(
        send,
        jobId,
        'TOO_MANY_JOBS',
        `At most ${this.options.perPeerOutstanding} jobs at once from one peer`,
      );
    if (waiting >= this.options.queueLimit)
      return this.reject(send, jobId, 'QUEUE_FULL', `${waiting} jobs are waiting here already`);
    if (offer.prefix.length >= offer.sampling.maxNewTokens)
      return this.reject(send, jobId, 'INVALID', 'The prefix leaves no tokens to make');
    const job: Job = { offer, peerId, send, cancelled: false, generation: null, stopReason: null, receivedAt: now };
    this.jobs.set(jobId, job);
    void send({ type: 'job:accept', jobId, position: waiting });
    this.changed();
    void this.run(job);
  }

  /** The requester gave up on a job: it stops within one token (or never starts). */
  cancel(peerId: string, jobId: string): void {
    const job = this.jobs.get(jobId);
    if (!job || job.peerId !== peerId) return;
    job.cancelled = true;
    job.stopReason = 'cancel';
    job.generation?.stop();
  }

  /** A peer left the room: its jobs are of no use to anyone now, and its offer count goes with it. */
  peerLeft(peerId: string): void {
    for (const job of this.jobs.values()) if (job.peerId === peerId) this.cancel(peerId, job.offer.jobId);
    this.offersByPeer.delete(peerId);
  }

  /** Peers with entries kept here, for tests that churn peers and watch memory. */
  footprint(): { peers: number } {
    return { peers: new Set([...this.offersByPeer.keys(), ...[...this.jobs.values()].map((job) => job.peerId)]).size };
  }

  private async run(job: Job): Promise<void> {
    const { offer } = job;
    const release = await this.gate.acquire('mesh', () => {
      job.stopReason ??= 'preempt';
      job.generation?.stop();
    });
    const deadline = setTimeout(
      () => {
        job.stopReason ??= 'deadline';
        job.generation?.stop();
      },
      Math.max(0, job.receivedAt + offer.deadlineMs - Date.now()),
    );
    let tokensOut = 0;
    let tokensPerSecond = 0;
    let outcome: ServedJobStats['outcome'] = 'error';
    let last: OutgoingPeerMessage | null = null;
    try {
      if (job.stopReason) throw new Error('stopped before it started');
      const generation = this.engine.generate(offer.messages, offer.sampling, offer.prefix);
      job.generation = generation;
      this.changed();
      for await (const token of generation) {
        const corrupt = this.options.corruptTokens === true && token.index >= 3;
        void job.send({
          type: 'job:token',
          jobId: offer.jobId,
          index: token.index,
          tokenId: corrupt ? (token.tokenId + 1) % 64 : token.tokenId,
          text: corrupt ? ' #' : token.text,
        });
      }
      const result = await generation.result;
      tokensOut = result.completionTokens;
      tokensPerSecond = result.tokensPerSecond;
      // A stop that came as the last token was made changed nothing: the answer is whole, report it as done.
      if (result.reason === 'interrupted' && (job.stopReason === 'preempt' || job.stopReason === 'deadline'))
        throw new Error(job.stopReason);
      outcome = job.cancelled ? 'cancelled' : 'done';
      last = {
        type: 'job:done',
        jobId: offer.jobId,
        reason: result.reason,
        backend: this.engine.loaded()?.backend ?? 'cpu',
        tokensIn: result.promptTokens,
        tokensOut: result.completionTokens,
        ttftMs: result.ttftMs,
        tokensPerSecond: result.tokensPerSecond,
      };
    } catch (error) {
      if (job.cancelled) outcome = 'cancelled';
      else {
        const code =
          job.stopReason === 'preempt'
            ? 'PREEMPTED'
            : job.stopReason === 'deadline'
              ? 'DEADLINE'
              : errorCode(error) === 'CONTEXT_OVERFLOW'
                ? 'CONTEXT_OVERFLOW'
                : 'GENERATION_FAILED';
        const message =
          code === 'PREEMPTED'
            ? "This peer's own chat needed the engine"
            : code === 'DEADLINE'
              ? `Not finished within ${offer.deadlineMs} ms`
              : error instanceof Error
                ? error.message
                : String(error);
        last = { type: 'job:error', jobId: offer.jobId, code, message: message.slice(0, 500) };
      }
    } finally {
      clearTimeout(deadline);
      // The engine is free before the last message goes out: a requester that stops reading cannot hold it.
      release();
      this.jobs.delete(offer.jobId);
      this.served.push({
        jobId: offer.jobId,
        peerId: job.peerId,
        purpose: offer.purpose,
        outcome,
        tokensOut,
        tokensPerSecond,
      });
      if (this.served.length > 200) this.served.shift();
      this.changed();
    }
    if (last) void job.send(last);
  }
}

/** The engine's error code (EngineError's, or the worker's error message's), when it has one. */
function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}
