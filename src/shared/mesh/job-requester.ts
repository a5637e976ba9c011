// The requesting side of mesh inference: pick the best peer for a job, stream its tokens, and keep the answer
// going when that peer leaves, stalls or fails (the next peer continues from the prompt plus the tokens so far;
// seeded decoding makes the continuation the same). Finished jobs are spot-checked by another peer at a
// rate (higher for users new here, see peer-trust.ts); a peer whose tokens do not match is excluded from
// scheduling here. Its pieces are their own modules with their own tests: ranking (peer-ranking.ts), what is
// remembered of peers and users (peer-records.ts), one job's state and outcome (job-progress.ts), one attempt
// (job-attempt.ts) and the spot check (spot-check.ts); this module wires them to the room's peers.
import type { ModelRef, PeerMessage } from '../peer-protocol.ts';
import type { GeneratedToken } from './engine-gate.ts';
import { type AttemptResult, JobAttempt } from './job-attempt.ts';
import { JobProgress, checkSendable } from './job-progress.ts';
import { PeerRecords } from './peer-records.ts';
import { rankPeers } from './peer-ranking.ts';
import { checkRate } from './peer-trust.ts';
import { type CheckPeer, type SpotCheck, type SpotCheckVerdict, spotCheck } from './spot-check.ts';
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

/** A mismatch a spot check caught: the peer that disagreed with the majority (or, with no majority, the served one). */
export interface MismatchEvent {
  peerId: string;
  jobId: string;
  checkers: string[];
}

export class JobRequester {
  /** Attempts in flight, by the id their peer knows them by. */
  private readonly attempts = new Map<string, { peerId: string; attempt: JobAttempt }>();
  /** What is remembered of the room's peers and users (speed, failures, answers served, exclusions, trust). */
  private readonly records = new PeerRecords((peerId) => this.peers().some((peer) => peer.peerId === peerId));
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
    return this.records.exclusion(userId);
  }

  isExcluded(peer: Pick<PeerView, 'userId'>): boolean {
    return this.records.isExcluded(peer.userId);
  }

  /** Finished answers `peerId` took part in since it joined. */
  servedCount(peerId: string): number {
    return this.records.servedCount(peerId);
  }

  /** Spot checks of `userId`'s answers that held up here. */
  matchesOf(userId: string): number {
    return this.records.matchesOf(userId);
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
    this.records.forget(peerId);
  }

  /** Entries kept per peer and per user, for tests that churn peers and watch memory. */
  footprint(): { peers: number; users: number } {
    return this.records.footprint();
  }

  /** Tokens per second this side measured on the peer's finished jobs; null before the first. */
  measuredTokensPerSecond(peerId: string): number | null {
    return this.records.measuredTokensPerSecond(peerId);
  }

  /** Peers that can run `model`, best first (see peer-ranking.ts): measured speed over claimed, queue, RTT, failures. */
  rank(model: ModelRef, skip: ReadonlySet<string> = new Set()): PeerView[] {
    return rankPeers(this.peers(), model, this.records, skip);
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
    checkSendable(jobId, request, this.options.deadlineMs);
    const started = Date.now();
    const progress = new JobProgress(jobId, started);
    for (;;) {
      if (job.cancelled) throw new MeshJobError('CANCELLED', 'Stopped before any peer answered');
      const left = this.options.deadlineMs - (Date.now() - started);
      if (left <= 0) throw new MeshJobError('DEADLINE', `No answer within ${this.options.deadlineMs} ms`);
      const [peer] = this.rank(request.model, progress.tried);
      if (!peer) throw progress.noPeer(request.model.id);
      progress.tried.add(peer.peerId);
      const attempt = await this.attempt(peer, request, progress.tokens, left, 'answer', job, {
        onAccepted: () => request.onServer?.(peer, progress.failoverCount),
        onToken: (token) => {
          progress.madeToken(peer, Date.now());
          request.onToken(token, peer);
        },
      });
      switch (attempt.kind) {
        case 'done': {
          const finished = progress.outcome(attempt.done);
          this.records.servedAnswer(progress.servedBy.map((server) => server.peerId));
          this.changed();
          if (this.drawsCheck(progress.madeBy.map((by) => by.userId)))
            finished.check = this.spotCheck(jobId, request, progress.tokens, progress.madeBy);
          return finished;
        }
        case 'cancelled':
          if (progress.tokens.length === 0) throw new MeshJobError('CANCELLED', 'Stopped before any peer answered');
          return progress.outcome(null);
        case 'failed':
          // The same fit runs on every peer of the model: another would refuse it too.
          if (attempt.overflow) throw new MeshJobError('CONTEXT_OVERFLOW', attempt.reason);
          if (progress.failed(peer, attempt)) this.records.failed(peer.peerId);
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
      onMeasured: (sample) => this.records.measured(peer.peerId, sample),
    });
    this.attempts.set(attemptId, { peerId: peer.peerId, attempt });
    if (job) job.current = attempt;
    return attempt.start().finally(() => {
      this.attempts.delete(attemptId);
      if (job?.current === attempt) job.current = null;
    });
  }

  /**
   * Whether to spot-check an answer these users made: at the room's rate, or the newcomer rate while any of them has
   * too few checks that held up here (peer-trust.ts). A pipeline answer (docs/pipeline.md) is drawn the same way.
   */
  drawsCheck(userIds: readonly string[]): boolean {
    const rate = checkRate(
      this.options,
      [...new Set(userIds)].map((userId) => this.records.matchesOf(userId)),
    );
    return this.options.random() < rate;
  }

  /**
   * Re-runs a job on `peer` for a spot check (a pipeline answer checked by a peer holding the whole model):
   * its tokens, or null when that peer could not.
   */
  async rerunOn(
    peer: PeerView,
    request: Pick<MeshRequest, 'model' | 'messages' | 'sampling'>,
    onAccepted?: () => void,
  ): Promise<GeneratedToken[] | null> {
    const rerun: GeneratedToken[] = [];
    const result = await this.attempt(peer, request, rerun, this.options.deadlineMs, 'check', null, {
      ...(onAccepted ? { onAccepted } : {}),
    });
    return result.kind === 'done' ? rerun : null;
  }

  /**
   * Acts on a spot check's verdict: its exclusions (every user of a chain, spot-check.ts), the trust its match
   * earns, and the mismatch listeners (each peer of a chain).
   */
  settle<P extends CheckPeer>(jobId: string, verdict: SpotCheckVerdict<P>): SpotCheck {
    for (const { peer, why } of verdict.exclusions)
      for (const userId of peer.members?.map((member) => member.userId) ?? [peer.userId])
        this.records.exclude(userId, why);
    if (verdict.matchedUsers.length) this.records.matched(verdict.matchedUsers);
    if (verdict.exclusions.length) this.changed();
    if (verdict.mismatch) {
      for (const peerId of verdict.mismatch.members?.map((member) => member.peerId) ?? [verdict.mismatch.peerId]) {
        const event = { peerId, jobId, checkers: verdict.check.checkers };
        for (const listener of this.mismatchListeners) listener(event);
      }
    }
    return verdict.check;
  }

  /** Peers that could check a job, in random order: checkers are drawn, not ranked by the speed peers claim. */
  drawCheckers(model: ModelRef, skipUsers: ReadonlySet<string>): PeerView[] {
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
      rerun: (peer) => this.rerunOn(peer, request, () => request.onChecker?.(peer)),
    });
    return this.settle(jobId, verdict);
  }
}
