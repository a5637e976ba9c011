// The requesting side of mesh inference: pick the best peer for a job, stream its tokens, and keep the answer
// going when that peer leaves, stalls or fails (the next peer continues from the prompt plus the tokens so far;
// seeded decoding makes the continuation the same). Finished jobs are spot-checked by another peer at a
// rate (higher for users new here, see peer-trust.ts); a peer whose tokens do not match is excluded from
// scheduling here. What is kept per peer is dropped when it leaves; what is kept per user is bounded.
// Past 300 lines because driving a job (attempts, failover, the outcome) and what the requester remembers of each
// peer (speed, failures, exclusions) read and write the same state; ranking (peer-ranking.ts), one attempt
// (job-attempt.ts) and the spot check (spot-check.ts) are their own modules with their own tests.
import {
  type JobRejectReason,
  type ModelRef,
  PEER_PROTOCOL_VERSION,
  type PeerMessage,
  PeerMessageSchema,
} from '../peer-protocol.ts';
import { BoundedMap } from './bounded-map.ts';
import type { GeneratedToken } from './engine-gate.ts';
import { type AttemptResult, JobAttempt } from './job-attempt.ts';
import { rankPeers } from './peer-ranking.ts';
import { PeerTrust, checkRate } from './peer-trust.ts';
import { type SpotCheck, spotCheck } from './spot-check.ts';
import {
  DEFAULT_REQUESTER_OPTIONS,
  type JobRequesterOptions,
  type MeshOutcome,
  MeshJobError,
  type MeshRequest,
  type PeerView,
} from './mesh-job.ts';
import { ChangeListeners } from '../change-listeners.ts';

export type { SpotCheck } from './spot-check.ts';
export { DEFAULT_REQUESTER_OPTIONS, MeshJobError } from './mesh-job.ts';
export type { JobRequesterOptions, MeshOutcome, MeshRequest, PeerView } from './mesh-job.ts';

const randomUuid = () => globalThis.crypto.randomUUID();
/** Users excluded here at once, at most; past it the oldest exclusion lapses (each one took a caught answer). */
const EXCLUDED_USERS = 10_000;
/** Weight of a new speed sample in a peer's measured speed. */
const SPEED_GAIN = 0.5;
const FAILURE_MEMORY_MS = 5 * 60_000;
/** Each failure halves a peer's score: past this many, one more changes nothing worth keeping a timestamp for. */
const FAILURES_KEPT = 16;

/**
 * Refusals that say a peer is busy now (its queue, its cap on one requester's jobs or offers), not that anything is
 * wrong with it: they leave no failure against it, and a job that meets only these fails as BUSY, which its asker
 * may take as "wait for a slot and ask again" (the server's /v1 does).
 */
const BUSY_REFUSALS: ReadonlySet<JobRejectReason> = new Set(['QUEUE_FULL', 'TOO_MANY_JOBS', 'RATE_LIMITED']);

/** A mismatch a spot check caught: the peer that disagreed with the majority (or, with no majority, the served one). */
export interface MismatchEvent {
  peerId: string;
  jobId: string;
  checkers: string[];
}

export class JobRequester {
  /** Attempts in flight, by the id their peer knows them by. */
  private readonly attempts = new Map<string, { peerId: string; attempt: JobAttempt }>();
  /** Per peer, dropped when it leaves: recent failures, and the speed measured on its finished jobs. */
  private readonly failures = new Map<string, number[]>();
  private readonly speeds = new Map<string, number>();
  /** Users whose peers are excluded from scheduling in this room, with why (a caught peer cannot just reconnect). */
  private readonly excluded = new BoundedMap<string, string>(EXCLUDED_USERS);
  /** Finished answers each peer took part in, for the room's panel. */
  private readonly served = new Map<string, number>();
  /** Matching checks per user: a user new here is checked more often (see peer-trust.ts). */
  private readonly trust = new PeerTrust();
  private readonly mismatchListeners = new Set<(event: MismatchEvent) => void>();
  private readonly listeners = new ChangeListeners();
  private readonly options: JobRequesterOptions;

  constructor(
    private readonly peers: () => PeerView[],
    options: JobRequesterOptions = DEFAULT_REQUESTER_OPTIONS,
  ) {
    this.options = { ...options };
  }

  /** Share of finished jobs re-run by another peer to check them (0 to 1). */
  get spotCheckRate(): number {
    return this.options.spotCheckRate;
  }

  /** Sets the share of finished jobs to spot-check, clamped to 0..1. */
  setSpotCheckRate(rate: number): void {
    this.options.spotCheckRate = Math.min(1, Math.max(0, rate));
    this.changed();
  }

  /** Calls `listener` after what a room's panel shows changes (check rate, answers served, exclusions). */
  subscribe(listener: () => void): () => void {
    return this.listeners.add(listener);
  }

  private changed(): void {
    this.listeners.notify();
  }

  /** Calls `listener` on every mismatch a spot check catches; returns the unsubscribe. */
  onMismatch(listener: (event: MismatchEvent) => void): () => void {
    this.mismatchListeners.add(listener);
    return () => this.mismatchListeners.delete(listener);
  }

  /** Why `userId`'s peers are excluded here, or undefined when they are not. */
  exclusion(userId: string): string | undefined {
    return this.excluded.get(userId);
  }

  isExcluded(peer: Pick<PeerView, 'userId'>): boolean {
    return this.excluded.has(peer.userId);
  }

  /** Finished answers `peerId` took part in since it joined. */
  servedCount(peerId: string): number {
    return this.served.get(peerId) ?? 0;
  }

  /** Spot checks of `userId`'s answers that held up here. */
  matchesOf(userId: string): number {
    return this.trust.matchesOf(userId);
  }

  /** A message from `peerId` about a job this side asked for. */
  receive(peerId: string, message: PeerMessage): void {
    if (!('jobId' in message)) return;
    const entry = this.attempts.get(message.jobId);
    if (entry && entry.peerId === peerId) entry.attempt.handle(message);
  }

  /** `peerId` left the room (or its channel closed): its jobs fail over, and nothing is kept about it. */
  peerLeft(peerId: string): void {
    for (const entry of [...this.attempts.values()]) if (entry.peerId === peerId) entry.attempt.left();
    this.failures.delete(peerId);
    this.speeds.delete(peerId);
    this.served.delete(peerId);
  }

  /** Entries kept per peer and per user, for tests that churn peers and watch memory. */
  footprint(): { peers: number; users: number } {
    const peers = new Set([...this.failures.keys(), ...this.speeds.keys(), ...this.served.keys()]);
    return { peers: peers.size, users: this.excluded.size + this.trust.size };
  }

  /** Whether `peerId` is in the room now: results that arrive after a peer left must not bring its entries back. */
  private isPresent(peerId: string): boolean {
    return this.peers().some((peer) => peer.peerId === peerId);
  }

  private recentFailures(peerId: string): number {
    const now = Date.now();
    const recent = (this.failures.get(peerId) ?? []).filter((at) => now - at < FAILURE_MEMORY_MS);
    if (recent.length) this.failures.set(peerId, recent);
    else this.failures.delete(peerId);
    return recent.length;
  }

  private failed(peerId: string): void {
    if (this.isPresent(peerId))
      this.failures.set(peerId, [...(this.failures.get(peerId) ?? []), Date.now()].slice(-FAILURES_KEPT));
  }

  private measured(peerId: string, sample: number | null): void {
    if (sample === null || !this.isPresent(peerId)) return;
    const before = this.speeds.get(peerId);
    this.speeds.set(peerId, before === undefined ? sample : before + SPEED_GAIN * (sample - before));
  }

  /** Tokens per second this side measured on the peer's finished jobs; null before the first. */
  measuredTokensPerSecond(peerId: string): number | null {
    return this.speeds.get(peerId) ?? null;
  }

  /** Peers that can run `model`, best first (see peer-ranking.ts): measured speed over claimed, queue, RTT, failures. */
  rank(model: ModelRef, skip: ReadonlySet<string> = new Set()): PeerView[] {
    return rankPeers(
      this.peers(),
      model,
      {
        measuredTokensPerSecond: (peerId) => this.measuredTokensPerSecond(peerId),
        recentFailures: (peerId) => this.recentFailures(peerId),
        isExcluded: (userId) => this.excluded.has(userId),
      },
      skip,
    );
  }

  /**
   * Runs `request` on the mesh. `cancel()` stops it within one token on the serving peer; `result` then rejects
   * with CANCELLED... unless tokens came, in which case it resolves with reason `interrupted`.
   */
  run(request: MeshRequest): { jobId: string; result: Promise<MeshOutcome>; cancel: () => void } {
    const jobId = randomUuid();
    const job = { cancelled: false, current: null as JobAttempt | null };
    const result = this.drive(jobId, request, job);
    return {
      jobId,
      result,
      cancel: () => {
        job.cancelled = true;
        job.current?.cancel();
      },
    };
  }

  private async drive(
    jobId: string,
    request: MeshRequest,
    job: { cancelled: boolean; current: JobAttempt | null },
  ): Promise<MeshOutcome> {
    // Checked here as the serving peer will check it: a job past the caps fails now, not by silence later.
    const valid = PeerMessageSchema.safeParse({
      v: PEER_PROTOCOL_VERSION,
      type: 'job:offer',
      jobId,
      model: request.model,
      messages: request.messages,
      sampling: request.sampling,
      prefix: [],
      deadlineMs: this.options.deadlineMs,
      purpose: 'answer',
    });
    if (!valid.success) {
      const issue = valid.error.issues[0];
      throw new MeshJobError(
        'INVALID',
        `This job cannot be sent: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
      );
    }
    const started = Date.now();
    const tokens: GeneratedToken[] = [];
    const madeBy: PeerView[] = [];
    const servedBy: PeerView[] = [];
    const tried = new Set<string>();
    let failovers = 0;
    let firstTokenAt = 0;
    const reasons: string[] = [];
    let onlyBusy = true;
    const outcome = (done: Extract<AttemptResult, { kind: 'done' }>['done'] | null): MeshOutcome => ({
      jobId,
      text: tokens.map((t) => t.text).join(''),
      tokenIds: tokens.map((t) => t.tokenId),
      reason: done?.reason ?? 'interrupted',
      servedBy,
      failovers,
      tokensIn: done?.tokensIn ?? 0,
      ttftMs: firstTokenAt ? firstTokenAt - started : 0,
      servedTtftMs: done?.ttftMs ?? 0,
      tokensPerSecond: done?.tokensPerSecond ?? 0,
      backend: done?.backend ?? '',
      check: null,
    });
    for (;;) {
      if (job.cancelled) throw new MeshJobError('CANCELLED', 'Stopped before any peer answered');
      const left = this.options.deadlineMs - (Date.now() - started);
      if (left <= 0) throw new MeshJobError('DEADLINE', `No answer within ${this.options.deadlineMs} ms`);
      const [peer] = this.rank(request.model, tried);
      if (!peer) {
        const why = reasons.length ? ` (${reasons.join('; ')})` : '';
        if (reasons.length > 0 && onlyBusy)
          throw new MeshJobError('BUSY', `Every peer in this room that shares ${request.model.id} is busy${why}`);
        throw new MeshJobError(
          'NO_PEER',
          `No peer in this room shares ${request.model.id}${tokens.length ? ' to finish this answer' : ''}${why}`,
        );
      }
      tried.add(peer.peerId);
      const attempt = await this.attempt(peer, request, tokens, left, 'answer', job, {
        onAccepted: () => request.onServer?.(peer, failovers),
        onToken: (token) => {
          if (!firstTokenAt) firstTokenAt = Date.now();
          if (servedBy.at(-1) !== peer) servedBy.push(peer);
          madeBy.push(peer);
          request.onToken(token, peer);
        },
      });
      switch (attempt.kind) {
        case 'done': {
          const finished = outcome(attempt.done);
          for (const server of new Set(servedBy)) {
            if (this.isPresent(server.peerId)) this.served.set(server.peerId, this.servedCount(server.peerId) + 1);
          }
          this.changed();
          const users = [...new Set(madeBy.map((by) => by.userId))];
          const rate = checkRate(
            this.options,
            users.map((userId) => this.trust.matchesOf(userId)),
          );
          if (this.options.random() < rate) finished.check = this.spotCheck(jobId, request, tokens, madeBy);
          return finished;
        }
        case 'cancelled':
          if (tokens.length === 0) throw new MeshJobError('CANCELLED', 'Stopped before any peer answered');
          return outcome(null);
        case 'failed':
          if (attempt.refusal && BUSY_REFUSALS.has(attempt.refusal)) {
            // Busy is no fault: its ranking stays, and the next peer is just the next choice.
            reasons.push(`${peer.name}: ${attempt.reason}`);
            break;
          }
          onlyBusy = false;
          this.failed(peer.peerId);
          reasons.push(`${peer.name}: ${attempt.reason}`);
          // Moving on from a peer that had taken the job is a failover; one that refused it is just the next choice.
          if (attempt.accepted) failovers++;
          break;
        default: {
          const never: never = attempt;
          throw new Error(`unknown attempt result ${JSON.stringify(never)}`);
        }
      }
    }
  }

  /** One peer's go at the job (job-attempt.ts), continuing after `tokens`; `job.current` is it while it runs. */
  private attempt(
    peer: PeerView,
    request: Pick<MeshRequest, 'model' | 'messages' | 'sampling'>,
    tokens: GeneratedToken[],
    deadlineMs: number,
    purpose: 'answer' | 'check',
    job: { current: JobAttempt | null } | null,
    hooks: { onAccepted?: () => void; onToken?: (token: GeneratedToken) => void },
  ): Promise<AttemptResult> {
    const attemptId = randomUuid();
    const attempt = new JobAttempt({
      attemptId,
      send: peer.send,
      job: { model: request.model, messages: request.messages, sampling: request.sampling },
      tokens,
      deadlineMs,
      purpose,
      stallMs: this.options.stallMs,
      acceptTimeoutMs: this.options.acceptTimeoutMs,
      ...hooks,
      onMeasured: (sample) => this.measured(peer.peerId, sample),
    });
    this.attempts.set(attemptId, { peerId: peer.peerId, attempt });
    if (job) job.current = attempt;
    return attempt.start().finally(() => {
      this.attempts.delete(attemptId);
      if (job?.current === attempt) job.current = null;
    });
  }

  /** Peers that could check a job, in random order: checkers are drawn, not ranked by the speed peers claim. */
  private drawCheckers(model: ModelRef, skipUsers: ReadonlySet<string>): PeerView[] {
    const eligible = this.rank(model).filter((peer) => !skipUsers.has(peer.userId));
    for (let i = eligible.length - 1; i > 0; i--) {
      const j = Math.floor(this.options.random() * (i + 1));
      [eligible[i], eligible[j]] = [eligible[j] as PeerView, eligible[i] as PeerView];
    }
    return eligible;
  }

  /** Runs the spot check (spot-check.ts) with peers of this room, then acts on its verdict. */
  private async spotCheck(
    jobId: string,
    request: MeshRequest,
    tokens: GeneratedToken[],
    madeBy: PeerView[],
  ): Promise<SpotCheck> {
    const verdict = await spotCheck({
      jobId,
      tokens,
      madeBy,
      candidates: (skipUsers) => this.drawCheckers(request.model, skipUsers),
      rerun: async (peer) => {
        const rerun: GeneratedToken[] = [];
        const result = await this.attempt(peer, request, rerun, this.options.deadlineMs, 'check', null, {
          onAccepted: () => request.onChecker?.(peer),
        });
        return result.kind === 'done' ? rerun : null;
      },
    });
    for (const { peer, why } of verdict.exclusions) {
      this.excluded.set(peer.userId, why);
      this.trust.forget(peer.userId);
    }
    if (verdict.matchedUsers.length) this.trust.matched(verdict.matchedUsers);
    if (verdict.exclusions.length) this.changed();
    if (verdict.mismatch) {
      const event = { peerId: verdict.mismatch.peerId, jobId, checkers: verdict.check.checkers };
      for (const listener of this.mismatchListeners) listener(event);
    }
    return verdict.check;
  }
}
