// The requester of pipeline jobs in a room, the same in a browser and in the headless peer: it finds a chain of
// peers whose stages cover the model (or plans one over peers that can load any range), opens the job on each
// (`pipe:open`), streams the tokens over the frame channels, and when a stage's peer leaves, has another peer
// take its layers with the replacement protocol (docs/pipeline.md#failover), so the answer goes on identically.
// Past 300 lines: running the job, noticing a departed or stalled stage and replacing it share each running job's
// state (its stages, its requester, its failovers); finding the chain (chain.ts) and the plan (plan.ts) are their
// own modules, and a job's record and spot check are pipeline-answer.ts's.
import type { OutgoingPeerMessage, PeerMessage } from '../peer-protocol.ts';
import type { PeerView } from '../mesh/mesh-job.ts';
import type { FrameWire } from './frame-wire.ts';
import { type PipelineJob, stageJob } from './job.ts';
import { jobFrameWire } from './job-wire.ts';
import type { LayerRange, PipelineCapability } from './pipe-protocol.ts';
import { stalledStage } from './stall.ts';
import { type StagePlacement, stageChain } from './chain.ts';
import { PipelineJobError, type PipelineRequest, PipelineRequester } from './pipeline-requester.ts';

export type { StagePlacement };

export interface PipelineReadout {
  jobId: string;
  model: string;
  /** Each stage's peer, in layer order, as they ended the job. */
  stages: (StagePlacement & { name: string })[];
  /** Stages taken over by another peer during the job. */
  failovers: { layers: LayerRange; from: string; to: string }[];
  tokensIn: number;
  tokensOut: number;
  ttftMs: number;
  tokensPerSecond: number;
}

export interface RoomPipelineRequest extends Omit<PipelineRequest, 'jobId'> {
  model: string;
  job: Omit<PipelineJob, 'jobId'>;
  /** The stages to use; without them the room's chain (or a plan). */
  stages?: StagePlacement[];
  onReadout?: (readout: PipelineReadout) => void;
  /** Every stage opened the job, before its first frame: its chain (for the job's record, pipeline-answer.ts). */
  onOpened?: (stages: readonly (StagePlacement & { name: string })[]) => void;
  /** Another peer took over a stage (failover), before it runs anything of the job. */
  onFailover?: (failover: PipelineReadout['failovers'][number]) => void;
}

type PipeReply = Extract<PeerMessage, { type: 'pipe:opened' | 'pipe:failed' | 'pipe:position' | 'pipe:redirected' }>;

interface Running {
  jobId: string;
  model: string;
  job: Omit<PipelineJob, 'jobId'>;
  onFailover: RoomPipelineRequest['onFailover'];
  /** The model version of its stages (a replacement must hold the same: docs/pipeline.md#stage-fingerprints). */
  version: string | undefined;
  stages: (StagePlacement & { name: string })[];
  requester: PipelineRequester;
  failovers: PipelineReadout['failovers'];
  replacing: Promise<void>;
  /** Replacements under way, and a stall probe under way (neither starts a probe meanwhile). */
  replacements: number;
  probing: boolean;
  /** When the job last moved: a token, a replacement done, or positions a probe found advanced. */
  movedAt: number;
  /** The job's positions end to end the last probe found since then (stall.ts). */
  seen: (number | null)[] | null;
  /** Peers found stalled on this job: not asked again to take a stage of it. */
  stalled: Set<string>;
}

export interface RoomPipelineTiming {
  /** No answer to a control message within this: the peer is taken as gone. */
  replyMs: number;
  /**
   * No token, and no stage's position moving, for this long: the stage the job waits on is replaced. Stages are
   * asked how far they got from half of it on (a long prefill moves their positions, not the tokens).
   */
  stallMs: number;
  /** A stage that does not answer that question within this has stalled. */
  probeMs: number;
  /**
   * A stage that answers it is running a frame of the job (`runningMs`: a long prompt sent in one frame to a slow
   * stage) keeps the job moving for up to this long; past it, the run is taken as hung and the stage as stalled.
   */
  frameMs: number;
}

const sameRange = (a: LayerRange, b: LayerRange) => a[0] === b[0] && a[1] === b[1];

/** A neighbour that did not answer during a failover (stalled or gone too) is replaced in turn. */
const unanswered = (error: unknown): null => {
  if (error instanceof PipelineJobError && (error.code === 'TIMEOUT' || error.code === 'NO_CHANNEL')) return null;
  throw error;
};

export class RoomPipeline {
  private readonly running = new Map<string, Running>();
  private readonly waiting = new Map<string, (reply: PipeReply) => void>();

  /** Tests shorten them. */
  // A stage's open may wait 20 s for its frame channels (stage-server.ts) and then load its layers.
  readonly timing: RoomPipelineTiming = { replyMs: 30_000, stallMs: 10_000, probeMs: 2000, frameMs: 120_000 };

  constructor(
    private readonly views: () => PeerView[],
    private readonly wire: (peerId: string) => FrameWire | undefined,
    /** Users a spot check caught (JobRequester's exclusions): their peers are given no stage. */
    private readonly excluded: (userId: string) => boolean = () => false,
  ) {}

  /**
   * Peers hosting stages of `model` with a frame channel to this one, and what they say of their stages; none of
   * an excluded user, nor of `skipUsers` (a spot check's chain avoids the users who served the answer).
   */
  hosts(model: string, skipUsers?: ReadonlySet<string>): (PeerView & { pipeline: PipelineCapability })[] {
    return this.views().flatMap((view) => {
      const pipeline = view.capabilities.pipeline;
      if (this.excluded(view.userId) || skipUsers?.has(view.userId)) return [];
      return pipeline?.model === model && this.wire(view.peerId) ? [{ ...view, pipeline }] : [];
    });
  }

  /**
   * A chain of distinct peers covering every layer of `model` (chain.ts: stages held, else a plan, else stage
   * files; one model version's stages only), none of `skipUsers`' peers nor of an excluded user's.
   */
  chain(model: string, skipUsers?: ReadonlySet<string>): StagePlacement[] | null {
    return stageChain(this.hosts(model, skipUsers));
  }

  /** Runs a job on the room's stages, yielding each token; a stage's peer leaving is taken over by another. */
  async *generate(request: RoomPipelineRequest): AsyncGenerator<number> {
    const placement = request.stages ?? this.chain(request.model);
    if (!placement?.length) {
      // Stages of a peer of another pipe protocol were set aside on arrival: the refusal names both versions.
      const refused = this.views().find((v) => v.capabilities.pipelineRefused);
      const aside = refused ? ` (${refused.name}'s stages are set aside: ${refused.capabilities.pipelineRefused})` : '';
      throw new PipelineJobError(
        'NO_PEER',
        `No chain of peers in this room holds every layer of ${request.model}${aside}`,
      );
    }
    const jobId = globalThis.crypto.randomUUID();
    const job = stageJob(request.job, request);
    const names = new Map(this.views().map((v) => [v.peerId, v.name] as const));
    const stages = placement.map((s) => ({ ...s, name: names.get(s.peerId) ?? s.peerId }));
    const started = performance.now();
    const opened = await Promise.allSettled(
      stages.map((s, i) =>
        this.openStage(
          jobId,
          { model: request.model, job },
          s,
          stages[i - 1]?.peerId ?? null,
          stages[i + 1]?.peerId ?? null,
        ),
      ),
    );
    const refused = opened.findIndex((o) => o.status === 'rejected');
    const first = this.wire(stages[0]!.peerId);
    const last = this.wire(stages.at(-1)!.peerId);
    if (refused >= 0 || !first || !last) {
      for (const s of stages) void this.send(s.peerId, { type: 'pipe:close', jobId });
      const reason = opened[refused];
      throw reason?.status === 'rejected'
        ? reason.reason
        : new PipelineJobError('NO_CHANNEL', 'A stage peer has no frame channel');
    }
    request.onOpened?.(stages.map((s) => ({ ...s })));
    const requester = new PipelineRequester(first, jobFrameWire(last, jobId));
    const run: Running = {
      jobId,
      model: request.model,
      job,
      onFailover: request.onFailover,
      version: this.hosts(request.model).find((h) => h.peerId === stages[0]?.peerId)?.pipeline.version,
      stages,
      requester,
      failovers: [],
      replacing: Promise.resolve(),
      replacements: 0,
      probing: false,
      movedAt: performance.now(),
      seen: null,
      stalled: new Set(),
    };
    this.running.set(jobId, run);
    let tokensOut = 0;
    let firstAt = 0;
    const watchdog = setInterval(() => this.watch(run), Math.max(50, this.timing.stallMs / 4));
    try {
      for await (const token of requester.generate({ ...request, jobId })) {
        this.moved(run);
        if (tokensOut++ === 0) firstAt = performance.now();
        yield token;
        // The time the caller takes with a token is not the stages' time.
        this.moved(run);
      }
      const seconds = (performance.now() - firstAt) / 1000;
      request.onReadout?.({
        jobId,
        model: request.model,
        stages: run.stages.map((s) => ({ ...s })),
        failovers: run.failovers,
        tokensIn: request.prompt.length,
        tokensOut,
        ttftMs: firstAt - started,
        tokensPerSecond: tokensOut > 1 && seconds > 0 ? (tokensOut - 1) / seconds : 0,
      });
    } finally {
      clearInterval(watchdog);
      this.running.delete(jobId);
      requester.stop();
      for (const s of run.stages) void this.send(s.peerId, { type: 'pipe:close', jobId });
    }
  }

  /** A pipeline message from `peerId` for this side (replies, and stages' failures). */
  receive(peerId: string, message: PipeReply): void {
    const key = `${message.jobId}|${peerId}`;
    const waiter = this.waiting.get(key);
    if (waiter) {
      this.waiting.delete(key);
      waiter(message);
      return;
    }
    if (message.type !== 'pipe:failed') return;
    const run = this.running.get(message.jobId);
    const index = run?.stages.findIndex((s) => s.peerId === peerId) ?? -1;
    // A stalled peer told to close may still fail what reaches it before it hears: it is being replaced.
    if (!run || index < 0 || run.stalled.has(peerId)) return;
    run.requester.fail(
      run.jobId,
      new PipelineJobError(message.code, `stage ${index} (${run.stages[index]?.name}): ${message.message}`),
    );
  }

  /** A peer left the room: each running job that had a stage on it gets another peer for that stage. */
  peerLeft(peerId: string): void {
    for (const run of this.running.values())
      if (run.stages.some((s) => s.peerId === peerId)) this.replaceLater(run, peerId);
  }

  private replaceLater(run: Running, peerId: string): void {
    run.replacements++;
    run.replacing = run.replacing
      .then(() => this.replace(run, peerId))
      .catch((error: unknown) =>
        run.requester.fail(
          run.jobId,
          error instanceof PipelineJobError
            ? error
            : new PipelineJobError('FAILOVER_FAILED', error instanceof Error ? error.message : String(error)),
        ),
      )
      .finally(() => {
        run.replacements--;
        this.moved(run);
      });
  }

  private moved(run: Running): void {
    run.movedAt = performance.now();
    run.seen = null;
  }

  /** `peerId` stopped working on `run`: another peer takes its stage, and it is told to close the job. */
  private stalledPeer(run: Running, peerId: string): void {
    run.stalled.add(peerId);
    this.replaceLater(run, peerId);
    void this.send(peerId, { type: 'pipe:close', jobId: run.jobId });
  }

  /**
   * No token for half of `stallMs`: each stage says how far its cache goes (`pipe:status`), probe after probe. While
   * any position moves (a long prefill: chunks run through the stages before the first token) the job is moving.
   * When none has moved for `stallMs`, the stage the job waits on (`stalledStage`) has stalled: it is replaced as if
   * it had left, and told to close. A probe not answered within `probeMs` counts as no move.
   */
  private watch(run: Running): void {
    if (run.replacements > 0 || run.probing || performance.now() - run.movedAt < this.timing.stallMs / 2) return;
    run.probing = true;
    const stages = [...run.stages];
    void Promise.all(
      stages.map((s) =>
        this.ask(s.peerId, { type: 'pipe:status', jobId: run.jobId }, this.timing.probeMs)
          .then((reply) => (reply.type === 'pipe:position' ? reply : null))
          .catch(() => null),
      ),
    ).then((replies) => {
      run.probing = false;
      // A token, a replacement or the job's end meanwhile: these positions are not the job's now.
      if (!this.running.has(run.jobId) || run.replacements > 0 || stages.some((s, i) => run.stages[i] !== s)) return;
      const positions = replies.map((reply) => reply?.position ?? null);
      const chain = [run.requester.queuedPosition(run.jobId), ...positions, run.requester.sampledPosition(run.jobId)];
      const seen = run.seen;
      run.seen = chain;
      // A stage running one frame for a while (a long unchunked prompt on a slow stage) moves no position but is
      // working, unlike a dead peer (no answer) or one with frames it does not run (its input ahead of its cache).
      const working = replies.some((reply) => reply?.runningMs !== undefined && reply.runningMs < this.timing.frameMs);
      if (!seen || working) {
        if (working) run.movedAt = performance.now();
        return;
      }
      if (chain.some((p, i) => p !== seen[i])) {
        run.movedAt = performance.now();
        return;
      }
      if (performance.now() - run.movedAt < this.timing.stallMs) return;
      const peer = stages[stalledStage(chain)]?.peerId;
      if (peer) this.stalledPeer(run, peer);
    });
  }

  private async replace(run: Running, lostPeer: string): Promise<void> {
    const k = run.stages.findIndex((s) => s.peerId === lostPeer);
    const lost = run.stages[k];
    if (!lost || !this.running.has(run.jobId)) return;
    const used = new Set(run.stages.map((s) => s.peerId));
    const before = run.stages[k - 1];
    const after = run.stages[k + 1];
    const holds = (p: PipelineCapability) => p.holds.some((r) => sameRange(r, lost.layers));
    const candidates = this.hosts(run.model)
      .filter(
        (h) =>
          !used.has(h.peerId) &&
          !run.stalled.has(h.peerId) &&
          (run.version === undefined || h.pipeline.version === run.version),
      )
      .filter(
        (h) => holds(h.pipeline) || h.pipeline.anyRange || h.pipeline.loadable.some((r) => sameRange(r, lost.layers)),
      )
      .sort((a, b) => Number(holds(b.pipeline)) - Number(holds(a.pipeline)) || (a.rttMs ?? 1e9) - (b.rttMs ?? 1e9));
    let chosen: (typeof candidates)[number] | undefined;
    for (const candidate of candidates) {
      const placement = { peerId: candidate.peerId, layers: lost.layers };
      const opened = await this.openStage(run.jobId, run, placement, before?.peerId ?? null, after?.peerId ?? null)
        .then(() => true)
        .catch(() => false);
      if (opened) {
        chosen = candidate;
        break;
      }
    }
    if (!chosen)
      throw new PipelineJobError('NO_REPLACEMENT', `No peer in the room could take layers ${lost.layers.join('-')}`);
    const into = this.wire(chosen.peerId);
    if (!into) throw new PipelineJobError('NO_CHANNEL', `No frame channel to ${chosen.name}`);
    run.stages[k] = { peerId: chosen.peerId, layers: lost.layers, name: chosen.name };
    const failover = { layers: lost.layers, from: lost.peerId, to: chosen.peerId };
    run.failovers.push(failover);
    run.onFailover?.(failover);
    // The stage after the lost one takes the replacement's output and says how far it got; the one before replays
    // into the replacement, rebuild-only up to there (docs/pipeline.md#failover). A neighbour that does not answer
    // has stalled (or left) too: it is replaced next. The stage after it then holds nothing to count on (the
    // replacement passes everything on, kept for that neighbour's replacement); the one before it is replaced
    // with this replacement as its next stage.
    let upTo = 0;
    if (!after) {
      run.requester.setFromLast(jobFrameWire(into, run.jobId));
      upTo = run.requester.sampledPosition(run.jobId);
    } else {
      const reply = await this.ask(after.peerId, {
        type: 'pipe:upstream',
        jobId: run.jobId,
        from: chosen.peerId,
      }).catch(unanswered);
      if (!reply) this.stalledPeer(run, after.peerId);
      else if (reply.type !== 'pipe:position') throw this.failure(reply, k + 1, after.name);
      else upTo = reply.position;
    }
    if (!before) await run.requester.redirect(into, () => Promise.resolve(upTo));
    else {
      const reply = await this.ask(before.peerId, {
        type: 'pipe:redirect',
        jobId: run.jobId,
        to: chosen.peerId,
        upTo,
      }).catch(unanswered);
      if (!reply) this.stalledPeer(run, before.peerId);
      else if (reply.type !== 'pipe:redirected') throw this.failure(reply, k - 1, before.name);
    }
  }

  private failure(reply: PipeReply, index: number, name: string): PipelineJobError {
    return reply.type === 'pipe:failed'
      ? new PipelineJobError(reply.code, `stage ${index} (${name}): ${reply.message}`)
      : new PipelineJobError('FAILOVER_FAILED', `stage ${index} (${name}) answered ${reply.type}`);
  }

  private async openStage(
    jobId: string,
    request: Pick<RoomPipelineRequest, 'model' | 'job'>,
    stage: StagePlacement,
    from: string | null,
    to: string | null,
  ): Promise<void> {
    const reply = await this.ask(stage.peerId, {
      type: 'pipe:open',
      jobId,
      job: request.job,
      model: request.model,
      layers: stage.layers,
      from,
      to,
    });
    if (reply.type !== 'pipe:opened')
      throw reply.type === 'pipe:failed'
        ? new PipelineJobError(reply.code, `layers ${stage.layers.join('-')}: ${reply.message}`)
        : new PipelineJobError('FAILED', `the stage answered ${reply.type}`);
  }

  /** Sends `message` (about one job) to `peerId` and waits for its reply. */
  private ask(
    peerId: string,
    message: OutgoingPeerMessage & { jobId: string },
    timeoutMs = this.timing.replyMs,
  ): Promise<PipeReply> {
    const key = `${message.jobId}|${peerId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new PipelineJobError('TIMEOUT', `no answer to ${message.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(key, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      void this.send(peerId, message).then((sent) => {
        if (sent) return;
        clearTimeout(timer);
        this.waiting.delete(key);
        reject(new PipelineJobError('NO_CHANNEL', 'the peer is gone'));
      });
    });
  }

  private send(peerId: string, message: OutgoingPeerMessage): Promise<boolean> {
    const view = this.views().find((v) => v.peerId === peerId);
    return view ? view.send(message) : Promise.resolve(false);
  }
}
