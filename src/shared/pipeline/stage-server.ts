// The stage peer's side of pipeline jobs in a room: a requester opens a job on this peer's stage (`pipe:open`,
// naming the peers its input comes from and its output goes to), frames run through a StageHost per job on the
// frame channels to those peers, and the failover messages re-point it (docs/pipeline.md, "Stages hosted by
// peers in a room"). Environment-neutral: the stage's session comes from a StageSource (onnxruntime-node in the
// headless peer).
import type { OutgoingPeerMessage, PeerMessage } from '../peer-protocol.ts';
import { ChangeListeners } from '../change-listeners.ts';
import { FrameLog } from './frame-log.ts';
import type { FrameWire } from './frame-wire.ts';
import { jobFrameWire } from './job-wire.ts';
import {
  type LayerRange,
  PIPE_PROTOCOL_VERSION,
  type PipeFailureCode,
  type PipelineCapability,
} from './pipe-protocol.ts';
import { StageHost } from './stage-host.ts';
import type { StageRunner } from './stage-runner.ts';

/** Where a peer's stages come from: stage files it has, or cut on demand from the whole model. */
export interface StageSource {
  readonly model: string;
  readonly layers: number;
  /** Stages loaded now, ranges it can load, and its memory (capability fields but speed). */
  describe(): Omit<PipelineCapability, 'speed' | 'protocol'>;
  /** The stage of `layers`, loading it if needed (one runner per range, shared by the jobs on it). */
  open(layers: LayerRange): Promise<StageRunner>;
}

type Send = (message: OutgoingPeerMessage) => Promise<boolean>;
type PipeMessage = Extract<PeerMessage, { type: `pipe:${string}` }>;

interface ServedJob {
  requester: string;
  host: StageHost;
  send: Send;
  /** Layers of its stage (the speed is counted in rows through one layer). */
  layers: number;
}

/** Jobs open on this peer at once, from all requesters together. */
const MAX_JOBS = 16;
/** Jobs one requester may have open here at once (the rest stay for the room's other requesters). */
export const MAX_JOBS_PER_REQUESTER = 4;
/**
 * How long a job's open waits for the frame channel to a peer it names: it opens just after the link, and a link
 * between two peers that just joined can take seconds on a loaded machine.
 */
const CHANNEL_WAIT_MS = 20_000;

export class StageServer {
  private readonly jobs = new Map<string, ServedJob>();
  private readonly wires = new Map<string, FrameWire>();
  private readonly wireListeners = new ChangeListeners();
  private readonly listeners = new ChangeListeners();
  private rows = 0;
  private busyMs = 0;

  constructor(
    readonly source: StageSource | null,
    /** Test only: a dishonest stage (StageHostOptions.corruptTokens), for the spot-check tests. */
    private readonly options: { corruptTokens?: boolean } = {},
  ) {}

  /** Calls `listener` when what this peer advertises changes (a stage loaded, speed measured). */
  subscribe(listener: () => void): () => void {
    return this.listeners.add(listener);
  }

  capability(): PipelineCapability | undefined {
    if (!this.source) return undefined;
    return {
      protocol: PIPE_PROTOCOL_VERSION,
      ...this.source.describe(),
      speed: this.busyMs > 0 ? (1000 * this.rows) / this.busyMs : null,
    };
  }

  /** The frame channel to `peerId` opened (the room opens one on every link). */
  addWire(peerId: string, wire: FrameWire): void {
    this.wires.set(peerId, wire);
    this.wireListeners.notify();
  }

  wire(peerId: string): FrameWire | undefined {
    const wire = this.wires.get(peerId);
    return wire?.isOpen() ? wire : undefined;
  }

  /** Waits up to `ms` for the frame channel to `peerId`. */
  async waitWire(peerId: string, ms = CHANNEL_WAIT_MS): Promise<FrameWire | undefined> {
    const now = this.wire(peerId);
    if (now) return now;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(this.wire(peerId));
      }, ms);
      const off = this.wireListeners.add(() => {
        const wire = this.wire(peerId);
        if (!wire) return;
        clearTimeout(timer);
        off();
        resolve(wire);
      });
    });
  }

  outstanding(): number {
    return this.jobs.size;
  }

  receive(peerId: string, message: PipeMessage, send: Send): void {
    switch (message.type) {
      case 'pipe:open':
        void this.open(peerId, message, send);
        return;
      case 'pipe:close': {
        const job = this.jobs.get(message.jobId);
        if (job?.requester === peerId) this.close(message.jobId);
        return;
      }
      case 'pipe:upstream':
        void this.upstream(peerId, message);
        return;
      case 'pipe:status': {
        const job = this.jobs.get(message.jobId);
        if (job?.requester !== peerId) return;
        const position = job.host.runner.cached(message.jobId);
        // A frame whose run takes long moves no position: saying so keeps the requester from taking it for a stall.
        const running = job.host.runningMs(message.jobId);
        const runningMs = running === undefined ? {} : { runningMs: Math.round(running) };
        void job.send({ type: 'pipe:position', jobId: message.jobId, position, ...runningMs });
        return;
      }
      case 'pipe:redirect':
        void this.redirect(peerId, message);
        return;
      default:
        return;
    }
  }

  /** A peer left: jobs it asked for end; jobs it was upstream or downstream of wait for the requester's failover. */
  peerLeft(peerId: string): void {
    this.wires.delete(peerId);
    for (const [jobId, job] of this.jobs) if (job.requester === peerId) this.close(jobId);
  }

  private fail(send: Send, jobId: string, code: PipeFailureCode, message: string): void {
    void send({ type: 'pipe:failed', jobId, code, message: message.slice(0, 500) });
  }

  private async open(peerId: string, message: Extract<PipeMessage, { type: 'pipe:open' }>, send: Send) {
    const { jobId, layers } = message;
    if (this.jobs.has(jobId)) return this.fail(send, jobId, 'INVALID', 'This job id is already open here');
    if (this.jobs.size >= MAX_JOBS) return this.fail(send, jobId, 'BUSY', `${MAX_JOBS} jobs are open here already`);
    const mine = [...this.jobs.values()].filter((job) => job.requester === peerId).length;
    if (mine >= MAX_JOBS_PER_REQUESTER)
      return this.fail(send, jobId, 'BUSY', `At most ${MAX_JOBS_PER_REQUESTER} jobs at once from one peer`);
    if (!this.source || this.source.model !== message.model)
      return this.fail(send, jobId, 'NO_STAGE', `This peer hosts no stage of ${message.model}`);
    let runner: StageRunner;
    try {
      runner = await this.source.open(layers);
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      return this.fail(send, jobId, /cannot load|no stage/i.test(text) ? 'NO_STAGE' : 'LOAD_FAILED', text);
    }
    this.listeners.notify();
    const [upstream, downstream] = await Promise.all([
      this.waitWire(message.from ?? peerId),
      this.waitWire(message.to ?? peerId),
    ]);
    if (!upstream || !downstream)
      return this.fail(send, jobId, 'NO_CHANNEL', 'No frame channel to the peers before and after this stage');
    const host = new StageHost(runner, {
      upstream: jobFrameWire(upstream, jobId),
      downstream,
      log: new FrameLog(1),
      maxJobs: 1,
      ...(this.options.corruptTokens ? { corruptTokens: true } : {}),
    });
    host.open({ ...message.job, jobId });
    host.onFailure((failure) => {
      this.fail(send, jobId, failure.code, failure.message);
      this.close(jobId);
    });
    this.jobs.set(jobId, { requester: peerId, host, send, layers: layers[1] - layers[0] });
    void send({ type: 'pipe:opened', jobId });
  }

  private async upstream(peerId: string, message: Extract<PipeMessage, { type: 'pipe:upstream' }>) {
    const job = this.jobs.get(message.jobId);
    if (job?.requester !== peerId) return;
    const wire = await this.waitWire(message.from ?? peerId);
    if (!wire) return this.fail(job.send, message.jobId, 'NO_CHANNEL', 'No frame channel to the new upstream peer');
    job.host.setUpstream(jobFrameWire(wire, message.jobId));
    await job.host.idle();
    void job.send({ type: 'pipe:position', jobId: message.jobId, position: job.host.runner.cached(message.jobId) });
  }

  private async redirect(peerId: string, message: Extract<PipeMessage, { type: 'pipe:redirect' }>) {
    const job = this.jobs.get(message.jobId);
    if (job?.requester !== peerId) return;
    const wire = await this.waitWire(message.to ?? peerId);
    if (!wire) return this.fail(job.send, message.jobId, 'NO_CHANNEL', 'No frame channel to the new downstream peer');
    await job.host.redirect(wire, () => Promise.resolve(message.upTo));
    void job.send({ type: 'pipe:redirected', jobId: message.jobId });
  }

  private close(jobId: string): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    this.jobs.delete(jobId);
    this.rows += job.host.stats.rows * job.layers;
    this.busyMs += job.host.stats.busyMs;
    job.host.stop();
    job.host.close(jobId);
    this.listeners.notify();
  }

  stop(): void {
    for (const jobId of [...this.jobs.keys()]) this.close(jobId);
  }
}
