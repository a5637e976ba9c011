// The requesting side of mesh inference: pick the best peer for a job, stream its tokens, and keep the answer
// going when that peer leaves, stalls or fails (the next peer continues from the prompt plus the tokens so far;
// seeded decoding makes the continuation the same). Finished jobs are spot-checked by another peer at a
// rate (higher for users new here, see peer-trust.ts); a peer whose tokens do not match is excluded from
// scheduling here. What is kept per peer is dropped when it leaves; what is kept per user is bounded.
import type { EngineMessage } from '../engine-protocol.ts';
import { type JobSampling, type ModelRef, type OutgoingPeerMessage, PEER_PROTOCOL_VERSION, type PeerCapabilities, type PeerMessage, PeerMessageSchema } from '../peer-protocol.ts';
import { BoundedMap } from './bounded-map.ts';
import type { GeneratedToken } from './engine-gate.ts';
import { measuredSpeed, rankPeers } from './peer-ranking.ts';
import { PeerTrust, type TrustPolicy, checkRate } from './peer-trust.ts';

export interface PeerView {
  peerId: string;
  /** The user behind the peer, as the server stamped it: exclusion sticks to the user, not one connection. */
  userId: string;
  name: string;
  capabilities: PeerCapabilities;
  rttMs: number | null;
  send: (message: OutgoingPeerMessage) => Promise<boolean>;
}

export interface JobRequesterOptions extends TrustPolicy {
  /** No token for this long from a peer that accepted (per queue position before the first): it has stalled. */
  stallMs: number;
  /** A peer that neither accepts nor rejects an offer within this is passed over. */
  acceptTimeoutMs: number;
  /** The whole answer, failovers included, within this. */
  deadlineMs: number;
  random: () => number;
}

export const DEFAULT_REQUESTER_OPTIONS: JobRequesterOptions = {
  spotCheckRate: 0.1,
  // Every answer from a user new here is checked until three checks of its answers have held up.
  newcomerCheckRate: 1,
  trustAfterMatches: 3,
  stallMs: 8000,
  acceptTimeoutMs: 5000,
  deadlineMs: 5 * 60_000,
  random: Math.random,
};

export interface MeshRequest {
  model: ModelRef;
  messages: EngineMessage[];
  sampling: JobSampling;
  onToken: (token: GeneratedToken, peer: PeerView) => void;
  /** The peer now serving the job (again after each failover). */
  onServer?: (peer: PeerView, failovers: number) => void;
  /** A peer that took the job's spot check (it re-runs the whole job). */
  onChecker?: (peer: PeerView) => void;
}

export interface SpotCheck {
  /**
   * MATCH: the served tokens held up (by majority when a third opinion was needed); MISMATCH: they did not;
   * UNRESOLVED: no checker answered, or the opinions split with no majority. Silence is never a match.
   */
  result: 'MATCH' | 'MISMATCH' | 'UNRESOLVED';
  checkers: string[];
  /** Peers excluded because of this check. */
  excluded: string[];
  /** The tokens that replaced the served ones, when they did not hold up. */
  corrected?: { tokenIds: number[]; text: string };
}

export interface MeshOutcome {
  jobId: string;
  text: string;
  tokenIds: number[];
  reason: 'eos' | 'length' | 'interrupted';
  /** Every peer that made part of the answer, in order. */
  servedBy: PeerView[];
  failovers: number;
  tokensIn: number;
  /** From asking to the first token, as this side saw it. */
  ttftMs: number;
  /** The last serving engine's own time to first token (its side of `ttftMs`). */
  servedTtftMs: number;
  tokensPerSecond: number;
  backend: string;
  /** Resolves after the spot check, if this job was picked for one. */
  check: Promise<SpotCheck> | null;
}

export class MeshJobError extends Error {
  constructor(
    readonly code: 'NO_PEER' | 'DEADLINE' | 'CANCELLED' | 'INVALID',
    message: string,
  ) {
    super(message);
    this.name = 'MeshJobError';
  }
}

type AttemptResult =
  | { kind: 'done'; done: Extract<PeerMessage, { type: 'job:done' }> }
  | { kind: 'failed'; reason: string; accepted: boolean }
  | { kind: 'cancelled' };

interface Attempt {
  peerId: string;
  handle: (message: PeerMessage) => void;
  left: () => void;
}

const randomUuid = () => globalThis.crypto.randomUUID();
/** A peer's queue position stretches the wait for its first token by at most this many stall periods. */
const MAX_QUEUE_GRACE = 4;
/** Users excluded here at once, at most; past it the oldest exclusion lapses (each one took a caught answer). */
const EXCLUDED_USERS = 10_000;
/** Weight of a new speed sample in a peer's measured speed. */
const SPEED_GAIN = 0.5;
const FAILURE_MEMORY_MS = 5 * 60_000;
/** Each failure halves a peer's score: past this many, one more changes nothing worth keeping a timestamp for. */
const FAILURES_KEPT = 16;

export class JobRequester {
  private readonly attempts = new Map<string, Attempt>();
  /** Per peer, dropped when it leaves: recent failures, and the speed measured on its finished jobs. */
  private readonly failures = new Map<string, number[]>();
  private readonly speeds = new Map<string, number>();
  /** Users whose peers are excluded from scheduling in this room, with why (a caught peer cannot just reconnect). */
  readonly excluded = new BoundedMap<string, string>(EXCLUDED_USERS);
  /** Finished answers each peer took part in, for the room's panel. */
  readonly servedMe = new Map<string, number>();
  /** Matching checks per user: a user new here is checked more often (see peer-trust.ts). */
  readonly trust = new PeerTrust();
  onMismatch: (event: { peerId: string; jobId: string; checkers: string[] }) => void = () => {};

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

  set spotCheckRate(rate: number) {
    this.options.spotCheckRate = Math.min(1, Math.max(0, rate));
  }

  /** A message from `peerId` about a job this side asked for. */
  receive(peerId: string, message: PeerMessage): void {
    if (!('jobId' in message)) return;
    const attempt = this.attempts.get(message.jobId);
    if (attempt && attempt.peerId === peerId) attempt.handle(message);
  }

  /** `peerId` left the room (or its channel closed): its jobs fail over, and nothing is kept about it. */
  peerLeft(peerId: string): void {
    for (const attempt of [...this.attempts.values()]) if (attempt.peerId === peerId) attempt.left();
    this.failures.delete(peerId);
    this.speeds.delete(peerId);
    this.servedMe.delete(peerId);
  }

  /** Entries kept per peer and per user, for tests that churn peers and watch memory. */
  footprint(): { peers: number; users: number } {
    const peers = new Set([...this.failures.keys(), ...this.speeds.keys(), ...this.servedMe.keys()]);
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
    if (this.isPresent(peerId)) this.failures.set(peerId, [...(this.failures.get(peerId) ?? []), Date.now()].slice(-FAILURES_KEPT));
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

  isExcluded(peer: Pick<PeerView, 'userId'>): boolean {
    return this.excluded.has(peer.userId);
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
    let cancelled = false;
    let cancelCurrent: () => void = () => {};
    const result = this.drive(jobId, request, () => cancelled, (cancel) => (cancelCurrent = cancel));
    return {
      jobId,
      result,
      cancel: () => {
        cancelled = true;
        cancelCurrent();
      },
    };
  }

  private async drive(jobId: string, request: MeshRequest, isCancelled: () => boolean, setCancel: (cancel: () => void) => void): Promise<MeshOutcome> {
    // Checked here as the serving peer will check it: a job past the caps fails now, not by silence later.
    const valid = PeerMessageSchema.safeParse({ v: PEER_PROTOCOL_VERSION, type: 'job:offer', jobId, model: request.model, messages: request.messages, sampling: request.sampling, prefix: [], deadlineMs: this.options.deadlineMs, purpose: 'answer' });
    if (!valid.success) {
      const issue = valid.error.issues[0];
      throw new MeshJobError('INVALID', `This job cannot be sent: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
    }
    const started = Date.now();
    const tokens: GeneratedToken[] = [];
    const madeBy: PeerView[] = [];
    const servedBy: PeerView[] = [];
    const tried = new Set<string>();
    let failovers = 0;
    let firstTokenAt = 0;
    const reasons: string[] = [];
    for (;;) {
      if (isCancelled()) throw new MeshJobError('CANCELLED', 'Stopped before any peer answered');
      const left = this.options.deadlineMs - (Date.now() - started);
      if (left <= 0) throw new MeshJobError('DEADLINE', `No answer within ${this.options.deadlineMs} ms`);
      const [peer] = this.rank(request.model, tried);
      if (!peer) {
        const why = reasons.length ? ` (${reasons.join('; ')})` : '';
        throw new MeshJobError('NO_PEER', `No peer in this room shares ${request.model.id}${tokens.length ? ' to finish this answer' : ''}${why}`);
      }
      tried.add(peer.peerId);
      const attempt = await this.attempt(peer, request, tokens, left, 'answer', setCancel, (token) => {
        if (!firstTokenAt) firstTokenAt = Date.now();
        if (servedBy.at(-1) !== peer) servedBy.push(peer);
        madeBy.push(peer);
        request.onToken(token, peer);
      }, () => request.onServer?.(peer, failovers));
      if (attempt.kind === 'done') {
        const { done } = attempt;
        const outcome: MeshOutcome = {
          jobId,
          text: tokens.map((t) => t.text).join(''),
          tokenIds: tokens.map((t) => t.tokenId),
          reason: done.reason,
          servedBy,
          failovers,
          tokensIn: done.tokensIn,
          ttftMs: firstTokenAt ? firstTokenAt - started : 0,
          servedTtftMs: done.ttftMs,
          tokensPerSecond: done.tokensPerSecond,
          backend: done.backend,
          check: null,
        };
        for (const server of new Set(servedBy)) {
          if (this.isPresent(server.peerId)) this.servedMe.set(server.peerId, (this.servedMe.get(server.peerId) ?? 0) + 1);
        }
        const users = [...new Set(madeBy.map((peer) => peer.userId))];
        const rate = checkRate(this.options, users.map((userId) => this.trust.matchesOf(userId)));
        if (this.options.random() < rate) outcome.check = this.spotCheck(jobId, request, tokens, madeBy);
        return outcome;
      }
      if (attempt.kind === 'cancelled') {
        if (tokens.length === 0) throw new MeshJobError('CANCELLED', 'Stopped before any peer answered');
        return {
          jobId,
          text: tokens.map((t) => t.text).join(''),
          tokenIds: tokens.map((t) => t.tokenId),
          reason: 'interrupted',
          servedBy,
          failovers,
          tokensIn: 0,
          ttftMs: firstTokenAt ? firstTokenAt - started : 0,
          servedTtftMs: 0,
          tokensPerSecond: 0,
          backend: '',
          check: null,
        };
      }
      this.failed(peer.peerId);
      reasons.push(`${peer.name}: ${attempt.reason}`);
      // Moving on from a peer that had taken the job is a failover; one that refused it is just the next choice.
      if (attempt.accepted) failovers++;
    }
  }

  /**
   * One peer's go at the job, continuing after `tokens` (which it extends as tokens arrive, in order). Resolves when
   * the peer finishes, fails, stalls or leaves.
   */
  private attempt(
    peer: PeerView,
    request: Pick<MeshRequest, 'model' | 'messages' | 'sampling'>,
    tokens: GeneratedToken[],
    deadlineMs: number,
    purpose: 'answer' | 'check',
    setCancel: (cancel: () => void) => void,
    onToken: (token: GeneratedToken) => void,
    onAccepted: () => void,
  ): Promise<AttemptResult> {
    const attemptId = randomUuid();
    const offeredAt = Date.now();
    const before = tokens.length;
    return new Promise<AttemptResult>((resolve) => {
      let accepted = false;
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | null = null;
      // However the peer paces its tokens, the attempt ends at the job's deadline.
      const hardStop = setTimeout(() => fail(`did not finish within ${Math.round(deadlineMs)} ms`), deadlineMs);
      const finish = (result: AttemptResult) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        clearTimeout(hardStop);
        this.attempts.delete(attemptId);
        resolve(result);
      };
      const fail = (reason: string) => {
        if (accepted) void peer.send({ type: 'job:cancel', jobId: attemptId });
        finish({ kind: 'failed', reason, accepted });
      };
      const arm = (ms: number, reason: string) => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => fail(reason), ms);
      };
      setCancel(() => {
        void peer.send({ type: 'job:cancel', jobId: attemptId });
        finish({ kind: 'cancelled' });
      });
      this.attempts.set(attemptId, {
        peerId: peer.peerId,
        left: () => fail('left the room'),
        handle: (message) => {
          switch (message.type) {
            case 'job:accept':
              if (accepted) return;
              accepted = true;
              onAccepted();
              // Waiting in its queue earns a little more time for the first token, not unbounded time.
              arm(this.options.stallMs * Math.min(1 + message.position, MAX_QUEUE_GRACE), 'accepted but sent no token in time');
              return;
            case 'job:reject':
              fail(`refused (${message.reason}: ${message.message})`);
              return;
            case 'job:token':
              if (!accepted) return fail('sent tokens for a job it had not accepted');
              if (message.index !== tokens.length) return fail(`sent token ${message.index} where ${tokens.length} was due`);
              arm(this.options.stallMs, 'stalled mid-answer');
              tokens.push({ index: message.index, tokenId: message.tokenId, text: message.text });
              onToken({ index: message.index, tokenId: message.tokenId, text: message.text });
              return;
            case 'job:done':
              if (!accepted) return fail('finished a job it had not accepted');
              // Nobody asked it to stop: an answer it cut short is not finished.
              if (message.reason === 'interrupted') return fail('stopped before the end of the answer');
              // `length` may come before maxNewTokens when the context is full; the spot checks catch an answer cut short.
              this.measured(peer.peerId, measuredSpeed(tokens.length - before, offeredAt, Date.now()));
              finish({ kind: 'done', done: message });
              return;
            case 'job:error':
              fail(`${message.code}: ${message.message}`);
              return;
            default:
              return;
          }
        },
      });
      arm(this.options.acceptTimeoutMs, 'did not answer the offer');
      void peer
        .send({
          type: 'job:offer',
          jobId: attemptId,
          model: request.model,
          messages: request.messages,
          sampling: request.sampling,
          prefix: tokens.map((t) => t.tokenId),
          deadlineMs: Math.max(1, Math.round(deadlineMs)),
          purpose,
        })
        .then(
          (sent) => {
            if (!sent) fail('its channel is closed');
          },
          (error: unknown) => fail(`the offer could not be sent: ${error instanceof Error ? error.message : String(error)}`),
        );
    });
  }

  /** Runs the whole job again on another peer (same prompt, sampling and seed). Null when that peer could not. */
  private async rerun(peer: PeerView, request: MeshRequest): Promise<GeneratedToken[] | null> {
    const tokens: GeneratedToken[] = [];
    const result = await this.attempt(peer, request, tokens, this.options.deadlineMs, 'check', () => {}, () => {}, () => request.onChecker?.(peer));
    return result.kind === 'done' ? tokens : null;
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

  /**
   * Re-runs the finished job on a peer drawn from those of other users than the ones who served it, and compares
   * token ids and texts. On a mismatch a third peer decides; the user the majority contradicts is excluded (the
   * served answer is corrected if it lost). With no third opinion the mismatch is reported and nobody is
   * excluded: two peers alone cannot say which is wrong. No checker at all is UNRESOLVED: an answer nobody
   * re-ran proves nothing, and only checks that held up earn its users trust here.
   */
  private async spotCheck(jobId: string, request: MeshRequest, tokens: GeneratedToken[], madeBy: PeerView[]): Promise<SpotCheck> {
    const skipUsers = new Set(madeBy.map((peer) => peer.userId));
    const checkers: PeerView[] = [];
    const opinion = async (): Promise<GeneratedToken[] | null> => {
      for (const peer of this.drawCheckers(request.model, skipUsers)) {
        skipUsers.add(peer.userId);
        const answer = await this.rerun(peer, request);
        if (answer) {
          checkers.push(peer);
          return answer;
        }
      }
      return null;
    };
    const same = (a: GeneratedToken[], b: GeneratedToken[]) => a.length === b.length && a.every((t, i) => t.tokenId === b[i]?.tokenId && t.text === b[i]?.text);
    const report = (result: SpotCheck['result'], excluded: PeerView[], corrected?: GeneratedToken[]): SpotCheck => ({
      result,
      checkers: checkers.map((peer) => peer.peerId),
      excluded: excluded.map((peer) => peer.peerId),
      ...(corrected ? { corrected: { tokenIds: corrected.map((t) => t.tokenId), text: corrected.map((t) => t.text).join('') } } : {}),
    });
    const exclude = (peer: PeerView, why: string) => {
      this.excluded.set(peer.userId, why);
      this.trust.forget(peer.userId);
      this.onMismatch({ peerId: peer.peerId, jobId, checkers: checkers.map((c) => c.peerId) });
    };
    const held = (excluded: PeerView[] = []) => {
      this.trust.matched(madeBy.map((peer) => peer.userId));
      return report('MATCH', excluded);
    };
    const first = await opinion();
    if (!first) return report('UNRESOLVED', []);
    if (same(first, tokens)) return held();
    // The first token that differs tells which serving peer made it (past the end: the last one, who stopped early).
    const at = tokens.findIndex((token, i) => token.tokenId !== first[i]?.tokenId || token.text !== first[i]?.text);
    const culprit = madeBy[at === -1 ? tokens.length - 1 : at] ?? madeBy.at(-1);
    const second = await opinion();
    if (!second || !culprit) {
      if (culprit) this.onMismatch({ peerId: culprit.peerId, jobId, checkers: checkers.map((c) => c.peerId) });
      return report('UNRESOLVED', []);
    }
    if (same(second, first)) {
      exclude(culprit, `its tokens for job ${jobId} did not match two other peers'`);
      return report('MISMATCH', [culprit], first);
    }
    const [wrongChecker] = checkers;
    if (same(second, tokens) && wrongChecker) {
      exclude(wrongChecker, `its spot check of job ${jobId} did not match two other peers'`);
      return held([wrongChecker]);
    }
    this.onMismatch({ peerId: culprit.peerId, jobId, checkers: checkers.map((c) => c.peerId) });
    return report('UNRESOLVED', []);
  }
}
