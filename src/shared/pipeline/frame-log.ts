// What a stage (or the requester) sent downstream for each job, kept so that a replacement for the next stage can
// rebuild its KV cache: the frames are sent again, those the stage after it already covered as rebuild-only
// (run, not passed on), the rest as they were (docs/pipeline.md#failover).
import { BoundedMap } from '../mesh/bounded-map.ts';
import { type Frame, encodeFrame, frameRows } from './frame.ts';
import { type FrameWire, sendFrame } from './frame-wire.ts';

/** Bytes of frames kept per job: a 1,000-token job of width 4,096 keeps 16 MiB. */
const MAX_BYTES_PER_JOB = 64 * 1024 * 1024;

export class FrameLog {
  private readonly jobs: BoundedMap<string, { frames: Frame[]; bytes: number; complete: boolean }>;

  constructor(maxJobs = 16) {
    this.jobs = new BoundedMap(maxJobs);
  }

  record(frame: Frame): void {
    const job = this.jobs.get(frame.jobId) ?? { frames: [], bytes: 0, complete: true };
    job.bytes += frame.data.byteLength;
    // Past the cap the job can no longer be replayed: keep nothing rather than part of it.
    if (job.bytes > MAX_BYTES_PER_JOB) job.complete = false;
    if (job.complete) job.frames.push(frame);
    else job.frames = [];
    if (!this.jobs.has(frame.jobId)) this.jobs.set(frame.jobId, job);
  }

  drop(jobId: string): void {
    this.jobs.delete(jobId);
  }

  jobIds(): string[] {
    return [...this.jobs.keys()];
  }

  /** Sends `jobId`'s frames into `wire`: those ending at or before position `upTo` rebuild-only, the rest as sent. */
  async replay(jobId: string, wire: FrameWire, upTo: number): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job?.complete) throw new Error(`job ${jobId} was not kept whole and cannot be rebuilt`);
    for (const frame of job.frames) {
      const end = frame.position + frameRows(frame);
      if (end <= upTo) await sendFrame(wire, encodeFrame({ ...frame, sample: false, rebuild: true }));
      else if (frame.position >= upTo) await sendFrame(wire, encodeFrame(frame));
      else throw new Error(`a frame of job ${jobId} straddles position ${upTo}: the stages cut it differently`);
    }
  }
}
