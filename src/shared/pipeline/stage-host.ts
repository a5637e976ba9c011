// A stage's host: frames arrive from upstream (the requester for the first stage, the previous stage otherwise),
// run through the stage one at a time in arrival order, and leave downstream: hidden states to the next stage,
// or from the last stage the sampled token back to the requester (docs/pipeline.md).
import { BoundedMap } from '../mesh/bounded-map.ts';
import { type Frame, FrameError, decodeFrame, encodeFrame, frameRows, rowsPerFrame } from './frame.ts';
import { type FrameWire, sendFrame } from './frame-wire.ts';
import type { FrameLog } from './frame-log.ts';
import { type PipelineJob, PipelineJobSchema, pickToken } from './job.ts';
import { StageError, type StageRunner } from './stage-runner.ts';

export interface StageHostOptions {
  upstream: FrameWire;
  downstream: FrameWire;
  /** Frames waiting for the stage before more are refused (a prompt's chunks, then one per token). */
  maxQueuedFrames?: number;
  /** Jobs open at once. */
  maxJobs?: number;
  /** Keep what this stage sends, so a replacement for the next stage can be rebuilt (see `redirect`). */
  log?: FrameLog;
  /** Test only: the last stage sends the next token id rather than the one it sampled (a dishonest stage for spot checks). */
  corruptTokens?: boolean;
}

export interface StageFailure {
  jobId: string;
  code: StageError['code'] | 'BAD_FRAME' | 'UNKNOWN_JOB' | 'BUSY' | 'FAILED';
  message: string;
}

export class StageHost {
  private readonly jobs: BoundedMap<string, PipelineJob>;
  private readonly failureListeners = new Set<(failure: StageFailure) => void>();
  private unsubscribe: () => void;
  private downstream: FrameWire;
  private stopped = false;
  private work: Promise<void> = Promise.resolve();
  private queued = 0;
  /** Aborted when the next stage is replaced: a frame waiting for the old one's buffer to drain is given up. */
  private leaving = new AbortController();
  /** The frame being run now, by job, and since when (a stall probe's answer says so: room-pipeline.ts). */
  private readonly running = new Map<string, number>();
  /** Frames this stage has run, and the time it spent in its session (the benchmark reads them). */
  readonly stats = { frames: 0, rows: 0, busyMs: 0 };

  constructor(
    readonly runner: StageRunner,
    private readonly options: StageHostOptions,
  ) {
    this.jobs = new BoundedMap(options.maxJobs ?? 16);
    this.downstream = options.downstream;
    this.unsubscribe = options.upstream.onFrame((bytes) => this.enqueue(bytes));
  }

  /** Jobs open on this stage (a replacement opens the same). */
  openJobs(): PipelineJob[] {
    return [...this.jobs.values()];
  }

  /** Takes frames from `wire` from now on (the previous stage was replaced). */
  setUpstream(wire: FrameWire): void {
    this.unsubscribe();
    this.unsubscribe = wire.onFrame((bytes) => this.enqueue(bytes));
  }

  /**
   * Sends to `wire` from now on (the next stage was replaced), after every frame already received, and first
   * replays each open job's frames into it: rebuild-only up to `upTo(jobId)`, the positions the stage after the
   * replaced one already holds, as sent after that.
   */
  redirect(wire: FrameWire, upTo: (jobId: string) => Promise<number>): Promise<void> {
    const log = this.options.log;
    if (!log) throw new Error('this stage keeps no log of what it sent: the next stage cannot be rebuilt');
    // A frame stuck behind the old next stage's full buffer (it stopped reading) would hold up the work, and this
    // redirect behind it, forever: it is given up now, and the replay below sends it (it is in the log).
    this.leaving.abort();
    const done = this.work.then(async () => {
      this.leaving = new AbortController();
      this.downstream = wire;
      for (const jobId of log.jobIds()) {
        if (!this.jobs.has(jobId)) continue;
        try {
          await log.replay(jobId, wire, await upTo(jobId));
        } catch (error) {
          this.fail(jobId, 'FAILED', error instanceof Error ? error.message : String(error));
        }
      }
    });
    this.work = done.catch(() => undefined);
    return done;
  }

  /** Accepts `job` (checked: it may come off a wire); frames of jobs not opened are refused. */
  open(job: unknown): PipelineJob {
    const parsed = PipelineJobSchema.parse(job);
    this.jobs.set(parsed.jobId, parsed);
    return parsed;
  }

  close(jobId: string): void {
    this.jobs.delete(jobId);
    this.runner.drop(jobId);
    this.options.log?.drop(jobId);
  }

  /** Adds `listener` for jobs this stage failed; returns the unsubscribe. */
  onFailure(listener: (failure: StageFailure) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  /** How long this stage has been running a frame of `jobId`, in ms; undefined when it runs none of it now. */
  runningMs(jobId: string): number | undefined {
    const since = this.running.get(jobId);
    return since === undefined ? undefined : performance.now() - since;
  }

  /** Resolves when every frame received so far has been handled. */
  idle(): Promise<void> {
    return this.work;
  }

  /** Takes no more frames and sends nothing more (the stage's peer is gone). */
  stop(): void {
    this.stopped = true;
    this.unsubscribe();
  }

  private enqueue(bytes: Uint8Array): void {
    if (this.queued >= (this.options.maxQueuedFrames ?? 256)) {
      // The frame is lost, so its job cannot go on: fail it rather than run later frames out of order.
      let jobId = '';
      try {
        jobId = decodeFrame(bytes).jobId;
      } catch {
        // An unreadable frame names no job.
      }
      this.fail(jobId, 'BUSY', 'this stage has too many frames waiting');
      return;
    }
    this.queued++;
    this.work = this.work.then(() => this.handle(bytes)).finally(() => this.queued--);
  }

  private async handle(bytes: Uint8Array): Promise<void> {
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (error) {
      return this.fail('', 'BAD_FRAME', error instanceof FrameError ? error.message : String(error));
    }
    const job = this.jobs.get(frame.jobId);
    if (!job) return this.fail(frame.jobId, 'UNKNOWN_JOB', `job ${frame.jobId} is not open on this stage`);
    try {
      const started = performance.now();
      // Only the run counts as working: a frame waiting to be sent is waiting on the next stage, not on this one.
      this.running.set(frame.jobId, started);
      const out = await this.runner.forward(frame).finally(() => this.running.delete(frame.jobId));
      this.stats.busyMs += performance.now() - started;
      this.stats.frames++;
      this.stats.rows += frameRows(frame);
      const { jobId, position, sample } = frame;
      // A replacement rebuilding its cache: what it computes was already passed on by the stage it replaces.
      if (frame.rebuild || this.stopped) return;
      if (out.kind === 'hidden') {
        // Split to fit the wire's largest message: the next stage runs each piece at its own position.
        const { width, data } = out;
        const rows = data.length / width;
        const step = rowsPerFrame(jobId, width, this.options.downstream.maxFrameBytes);
        for (let at = 0; at < rows; at += step) {
          const piece = data.subarray(at * width, Math.min(rows, at + step) * width);
          const last = at + step >= rows;
          const next: Frame = {
            kind: 'hidden',
            jobId,
            position: position + at,
            sample: sample && last,
            width,
            data: piece,
          };
          await this.pass(next);
        }
      } else if (sample) {
        const at = position + frameRows(frame);
        const picked = pickToken(out.data, job, at);
        const token = this.options.corruptTokens ? (picked + 1) % out.data.length : picked;
        const next: Frame = {
          kind: 'sampled',
          jobId,
          position: at,
          sample: false,
          width: 1,
          data: Int32Array.of(token),
        };
        await this.pass(next);
      }
    } catch (error) {
      const code = error instanceof StageError ? error.code : 'FAILED';
      this.fail(frame.jobId, code, error instanceof Error ? error.message : String(error));
    }
  }

  private async pass(frame: Frame): Promise<void> {
    const log = frame.kind === 'hidden' ? this.options.log : undefined;
    log?.record(frame);
    const wire = this.downstream;
    try {
      await sendFrame(wire, encodeFrame(frame), undefined, log ? this.leaving.signal : undefined);
    } catch (error) {
      // The next stage is gone: with a log its replacement gets this frame when it takes over (redirect).
      if (!log || wire.isOpen()) throw error;
    }
  }

  private fail(jobId: string, code: StageFailure['code'], message: string): void {
    if (jobId) this.close(jobId);
    for (const listener of this.failureListeners) listener({ jobId, code, message });
  }
}
