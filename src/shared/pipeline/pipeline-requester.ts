// The requester's side of a pipeline job: the prompt goes to the first stage in chunks (each stage starts on a
// chunk as soon as the previous stage hands it on, so stages work at once on a long prefill), the last stage sends
// back the sampled token, and each token goes round again as the next step's input (docs/pipeline.md).
import { type Frame, FrameError, decodeFrame, encodeFrame, frameRows, rowsPerFrame } from './frame.ts';
import { FrameLog } from './frame-log.ts';
import { type FrameWire, sendFrame } from './frame-wire.ts';

export interface PipelineRequest {
  jobId: string;
  /** The prompt's token ids (the chat template already applied). */
  prompt: readonly number[];
  maxNewTokens: number;
  /** Tokens that end the answer (they are part of it, as in the engine). */
  eos: ReadonlySet<number>;
  /** Prompt rows per frame; the whole prompt in one frame when absent. */
  chunk?: number;
  signal?: AbortSignal;
}

export class PipelineJobError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PipelineJobError';
  }
}

interface Waiter {
  resolve: (frame: Frame) => void;
  reject: (error: Error) => void;
}

export class PipelineRequester {
  private readonly waiters = new Map<string, Waiter>();
  private unsubscribe: () => void;
  /** What went to the first stage, for its replacement; and the position of the last token each job received. */
  private readonly log = new FrameLog();
  private readonly sampled = new Map<string, number>();
  /** Positions each job's frames to the first stage cover, as queued (sent or waiting to be). */
  private readonly queuedTo = new Map<string, number>();
  private outgoing: Promise<void> = Promise.resolve();
  /** Aborted when the first stage is replaced: a frame waiting for the old one's buffer to drain is given up. */
  private leaving = new AbortController();

  constructor(
    private toFirst: FrameWire,
    fromLast: FrameWire,
  ) {
    this.unsubscribe = fromLast.onFrame((bytes) => this.receive(bytes));
  }

  /** Takes sampled tokens from `wire` from now on (the last stage was replaced). */
  setFromLast(wire: FrameWire): void {
    this.unsubscribe();
    this.unsubscribe = wire.onFrame((bytes) => this.receive(bytes));
  }

  /** Positions the last stage had covered for `jobId`, as the tokens that came back show (0 before the first). */
  sampledPosition(jobId: string): number {
    return this.sampled.get(jobId) ?? 0;
  }

  /** Positions of `jobId` handed to the first stage so far (queued to send: a full buffer may hold them). */
  queuedPosition(jobId: string): number {
    return this.queuedTo.get(jobId) ?? 0;
  }

  /** Sends to `wire` from now on (the first stage was replaced), replaying each running job first (StageHost.redirect). */
  redirect(wire: FrameWire, upTo: (jobId: string) => Promise<number>): Promise<void> {
    // A frame stuck behind the old first stage's full buffer would hold this redirect forever: it is given up, and
    // the replay sends it (it is in the log).
    this.leaving.abort();
    const done = this.outgoing.then(async () => {
      this.leaving = new AbortController();
      this.toFirst = wire;
      for (const jobId of this.log.jobIds()) {
        if (!this.waiters.has(jobId)) continue;
        try {
          await this.log.replay(jobId, wire, await upTo(jobId));
        } catch (error) {
          this.fail(
            jobId,
            new PipelineJobError('REBUILD_FAILED', error instanceof Error ? error.message : String(error)),
          );
        }
      }
    });
    this.outgoing = done.catch(() => undefined);
    return done;
  }

  /** Ends `jobId` with `error` (a stage reported a failure, or its peer left). */
  fail(jobId: string, error: PipelineJobError): void {
    const waiter = this.waiters.get(jobId);
    this.waiters.delete(jobId);
    waiter?.reject(error);
  }

  stop(): void {
    this.unsubscribe();
    for (const jobId of [...this.waiters.keys()])
      this.fail(jobId, new PipelineJobError('STOPPED', 'the pipeline stopped'));
  }

  /** Runs the job, yielding each token as the last stage samples it; the stages must have opened the job. */
  async *generate(request: PipelineRequest): AsyncGenerator<number> {
    const { jobId, prompt } = request;
    if (prompt.length === 0) throw new PipelineJobError('INVALID_REQUEST', 'the prompt is empty');
    if (this.waiters.has(jobId)) throw new PipelineJobError('INVALID_REQUEST', `job ${jobId} is already running`);
    const fits = rowsPerFrame(jobId, 1, this.toFirst.maxFrameBytes);
    const chunk = Math.min(fits, Math.max(1, request.chunk ?? prompt.length));
    const abort = () => this.fail(jobId, new PipelineJobError('ABORTED', 'the job was stopped'));
    request.signal?.addEventListener('abort', abort, { once: true });
    try {
      yield* this.run(request, chunk);
    } finally {
      request.signal?.removeEventListener('abort', abort);
      this.waiters.delete(jobId);
      this.log.drop(jobId);
      this.sampled.delete(jobId);
      this.queuedTo.delete(jobId);
    }
  }

  private async *run(request: PipelineRequest, chunk: number): AsyncGenerator<number> {
    const { jobId, prompt, maxNewTokens, eos } = request;
    let position = 0;
    let next = this.expect(jobId);
    // Every chunk is sent before the first token is awaited: the wire's backpressure, not a round trip per chunk,
    // paces the prefill.
    for (let at = 0; at < prompt.length; at += chunk) {
      const rows = Int32Array.from(prompt.slice(at, at + chunk));
      const last = at + chunk >= prompt.length;
      await this.send({ kind: 'tokens', jobId, position: at, sample: last, width: 1, data: rows });
      position = at + rows.length;
    }
    for (let made = 0; made < maxNewTokens; made++) {
      if (request.signal?.aborted) throw new PipelineJobError('ABORTED', 'the job was stopped');
      const frame = await next;
      if (frame.position !== position)
        throw new PipelineJobError('OUT_OF_ORDER', `a token for position ${frame.position} came, not ${position}`);
      const token = frame.data[0] ?? 0;
      yield token;
      if (eos.has(token) || made + 1 === maxNewTokens) break;
      next = this.expect(jobId);
      await this.send({ kind: 'tokens', jobId, position, sample: true, width: 1, data: Int32Array.of(token) });
      position++;
    }
  }

  /** Sends after whatever is being sent (a replay included), to whichever first stage is current then. */
  private send(frame: Frame): Promise<void> {
    this.log.record(frame);
    this.queuedTo.set(frame.jobId, frame.position + frameRows(frame));
    const sent = this.outgoing.then(async () => {
      const wire = this.toFirst;
      try {
        await sendFrame(wire, encodeFrame(frame), undefined, this.leaving.signal);
      } catch (error) {
        // The first stage is gone: its replacement gets this frame from the log (redirect).
        if (wire.isOpen()) throw error;
      }
    });
    this.outgoing = sent.catch(() => undefined);
    return sent;
  }

  private expect(jobId: string): Promise<Frame> {
    const next = new Promise<Frame>((resolve, reject) => this.waiters.set(jobId, { resolve, reject }));
    // A stage may fail the job while its prompt is still being sent, before anyone awaits this: the failure is
    // thrown when it is awaited, not reported as unhandled meanwhile.
    next.catch(() => undefined);
    return next;
  }

  private receive(bytes: Uint8Array): void {
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (error) {
      if (error instanceof FrameError) return;
      throw error;
    }
    if (frame.kind !== 'sampled') return;
    if (this.waiters.has(frame.jobId)) this.sampled.set(frame.jobId, frame.position);
    const waiter = this.waiters.get(frame.jobId);
    waiter?.resolve(frame);
  }
}
