// One mesh job across its attempts, as plain state: the tokens so far and who made them, the peers tried, why each
// passed, the failovers; and from it the job's outcome (built here only) or the error that says why no peer is left.
// The requester (job-requester.ts) drives it; nothing here talks to a peer.
import { type JobRejectReason, PEER_PROTOCOL_VERSION, type PeerMessage, PeerMessageSchema } from '../peer-protocol.ts';
import type { GeneratedToken } from './engine-gate.ts';
import type { AttemptResult } from './job-attempt.ts';
import { type MeshOutcome, MeshJobError, type MeshRequest, type PeerView } from './mesh-job.ts';

/**
 * Refusals that say a peer is busy now (its queue, its cap on one requester's jobs or offers), not that anything is
 * wrong with it: they leave no failure against it, and a job that meets only these fails as BUSY, which its asker
 * may take as "wait for a slot and ask again" (the server's /v1 does).
 */
export const BUSY_REFUSALS: ReadonlySet<JobRejectReason> = new Set(['QUEUE_FULL', 'TOO_MANY_JOBS', 'RATE_LIMITED']);

export type DoneMessage = Extract<PeerMessage, { type: 'job:done' }>;

/** Refuses now, as the serving peer would, a job past the caps: it fails at once, not by silence later. */
export function checkSendable(jobId: string, request: MeshRequest, deadlineMs: number): void {
  const valid = PeerMessageSchema.safeParse({
    v: PEER_PROTOCOL_VERSION,
    type: 'job:offer',
    jobId,
    model: request.model,
    messages: request.messages,
    sampling: request.sampling,
    prefix: [],
    deadlineMs,
    purpose: 'answer',
  });
  if (!valid.success) {
    const issue = valid.error.issues[0];
    throw new MeshJobError(
      'INVALID',
      `This job cannot be sent: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
    );
  }
}

export class JobProgress {
  /** Every token so far, in order (each attempt appends to it): the next peer continues after them. */
  readonly tokens: GeneratedToken[] = [];
  /** The peer that made each token. */
  readonly madeBy: PeerView[] = [];
  /** Each peer that made part of the answer, in order (again after it, when the answer came back to it). */
  readonly servedBy: PeerView[] = [];
  /** Peers offered the job: none is offered it twice. */
  readonly tried = new Set<string>();
  private failovers = 0;
  private firstTokenAt = 0;
  private readonly reasons: string[] = [];
  private onlyBusy = true;

  constructor(
    readonly jobId: string,
    private readonly startedAt: number,
  ) {}

  get failoverCount(): number {
    return this.failovers;
  }

  /** `peer` made the token its attempt just appended to `tokens`. */
  madeToken(peer: PeerView, now: number): void {
    if (!this.firstTokenAt) this.firstTokenAt = now;
    if (this.servedBy.at(-1) !== peer) this.servedBy.push(peer);
    this.madeBy.push(peer);
  }

  /**
   * `peer`'s attempt failed; returns whether that is a fault of the peer (a busy refusal is not: its ranking stays).
   * Moving on from a peer that had taken the job is a failover; one that refused it is just the next choice.
   */
  failed(peer: PeerView, attempt: Extract<AttemptResult, { kind: 'failed' }>): boolean {
    this.reasons.push(`${peer.name}: ${attempt.reason}`);
    if (attempt.refusal && BUSY_REFUSALS.has(attempt.refusal)) return false;
    this.onlyBusy = false;
    if (attempt.accepted) this.failovers++;
    return true;
  }

  /** Why no peer is left for `modelId`: BUSY when every one that was asked only refused for now. */
  noPeer(modelId: string): MeshJobError {
    const why = this.reasons.length ? ` (${this.reasons.join('; ')})` : '';
    if (this.reasons.length > 0 && this.onlyBusy)
      return new MeshJobError('BUSY', `Every peer in this room that shares ${modelId} is busy${why}`);
    return new MeshJobError(
      'NO_PEER',
      `No peer in this room shares ${modelId}${this.tokens.length ? ' to finish this answer' : ''}${why}`,
    );
  }

  /** The job's outcome: finished by the last peer's `done`, or interrupted (null) with the tokens so far. */
  outcome(done: DoneMessage | null): MeshOutcome {
    return {
      jobId: this.jobId,
      text: this.tokens.map((t) => t.text).join(''),
      tokenIds: this.tokens.map((t) => t.tokenId),
      reason: done?.reason ?? 'interrupted',
      servedBy: this.servedBy,
      failovers: this.failovers,
      tokensIn: done?.tokensIn ?? 0,
      ttftMs: this.firstTokenAt ? this.firstTokenAt - this.startedAt : 0,
      servedTtftMs: done?.ttftMs ?? 0,
      tokensPerSecond: done?.tokensPerSecond ?? 0,
      backend: done?.backend ?? '',
      check: null,
    };
  }
}
