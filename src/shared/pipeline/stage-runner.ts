// One stage of a pipeline over its ONNX Runtime session: it keeps each job's KV cache for its own layers and
// runs the rows of a frame (token ids into the first stage, hidden states into the others) at the job's next
// position, giving back the hidden states for the next stage or, on the last stage, the last row's logits
// (docs/pipeline.md). Environment-neutral: the session is onnxruntime-node's or onnxruntime-web's.
import { BoundedMap } from '../mesh/bounded-map.ts';
import type { Frame } from './frame.ts';
import { HIDDEN_INPUT, HIDDEN_OUTPUT, type StageSession, type StageTensor } from './stage-session.ts';
const PAST = /^past_key_values\.(\d+)\.(key|value)$/;

export class StageError extends Error {
  constructor(
    readonly code: 'OUT_OF_ORDER' | 'WRONG_INPUT' | 'CONTEXT_OVERFLOW' | 'BAD_GRAPH',
    message: string,
  ) {
    super(message);
    this.name = 'StageError';
  }
}

interface JobCache {
  /** Tokens (positions) the cache covers. */
  length: number;
  past: Record<string, StageTensor>;
}

export type StageOutput =
  { kind: 'hidden'; data: Float32Array; width: number } | { kind: 'logits'; data: Float32Array };

export interface StageRunnerOptions {
  /** Jobs whose caches are kept at once; the least recently used is forgotten past it. */
  maxJobs?: number;
  /** Positions a job may reach (the model's context). */
  maxPositions?: number;
}

export class StageRunner {
  /** Takes token ids (holds the embeddings), else hidden states. */
  readonly first: boolean;
  /** Gives logits (holds the final norm and the LM head), else hidden states. */
  readonly last: boolean;
  private readonly pastNames: string[];
  private readonly pastDims = new Map<string, [number, number]>();
  private readonly caches: BoundedMap<string, JobCache>;
  private readonly maxPositions: number;

  constructor(
    private readonly session: StageSession,
    options: StageRunnerOptions = {},
  ) {
    const inputs = new Set(session.inputs.map((i) => i.name));
    const outputs = new Set(session.outputs.map((o) => o.name));
    this.first = inputs.has('input_ids');
    this.last = outputs.has('logits');
    if (this.first === inputs.has(HIDDEN_INPUT))
      throw new StageError('BAD_GRAPH', `a stage takes either input_ids or ${HIDDEN_INPUT}`);
    if (this.last === outputs.has(HIDDEN_OUTPUT))
      throw new StageError('BAD_GRAPH', `a stage gives either logits or ${HIDDEN_OUTPUT}`);
    this.pastNames = session.inputs.map((i) => i.name).filter((name) => PAST.test(name));
    for (const input of session.inputs) {
      if (!PAST.test(input.name)) continue;
      const [, heads, , headDim] = input.shape;
      if (typeof heads !== 'number' || typeof headDim !== 'number')
        throw new StageError(
          'BAD_GRAPH',
          `${input.name} must declare its heads and head size (got ${input.shape.join(', ')})`,
        );
      this.pastDims.set(input.name, [heads, headDim]);
    }
    this.caches = new BoundedMap(options.maxJobs ?? 16);
    this.maxPositions = options.maxPositions ?? Infinity;
  }

  /** Positions this stage's cache holds for `jobId` (0 when it holds none). */
  cached(jobId: string): number {
    return this.caches.get(jobId)?.length ?? 0;
  }

  /** Runs `frame`'s rows at its position, which must be the next one this stage's cache for the job expects. */
  async forward(frame: Pick<Frame, 'kind' | 'jobId' | 'position' | 'data' | 'width'>): Promise<StageOutput> {
    const expected = this.first ? 'tokens' : 'hidden';
    if (frame.kind !== expected) throw new StageError('WRONG_INPUT', `this stage takes ${expected}, not ${frame.kind}`);
    const cache = this.caches.get(frame.jobId) ?? { length: 0, past: this.emptyPast() };
    if (frame.position !== cache.length)
      throw new StageError(
        'OUT_OF_ORDER',
        `job ${frame.jobId} is at position ${cache.length} on this stage, not ${frame.position}`,
      );
    const rows = frame.data.length / frame.width;
    const total = cache.length + rows;
    if (total > this.maxPositions)
      throw new StageError('CONTEXT_OVERFLOW', `position ${total} is past the model's ${this.maxPositions}`);
    const feeds: Record<string, StageTensor> = { ...cache.past };
    for (const { name } of this.session.inputs) {
      if (name === 'input_ids')
        feeds[name] = { type: 'int64', data: BigInt64Array.from(frame.data as Int32Array, BigInt), dims: [1, rows] };
      else if (name === HIDDEN_INPUT)
        feeds[name] = { type: 'float32', data: frame.data as Float32Array, dims: [1, rows, frame.width] };
      else if (name === 'attention_mask')
        feeds[name] = { type: 'int64', data: new BigInt64Array(total).fill(1n), dims: [1, total] };
      else if (name === 'position_ids')
        feeds[name] = {
          type: 'int64',
          data: BigInt64Array.from({ length: rows }, (_, i) => BigInt(cache.length + i)),
          dims: [1, rows],
        };
      else if (!feeds[name]) throw new StageError('BAD_GRAPH', `no feed for the stage's input ${name}`);
    }
    const out = await this.session.run(feeds);
    const past: Record<string, StageTensor> = {};
    for (const name of this.pastNames) {
      const present = out[name.replace('past_key_values', 'present')];
      if (!present)
        throw new StageError('BAD_GRAPH', `the stage gives no ${name.replace('past_key_values', 'present')}`);
      past[name] = present;
    }
    this.caches.set(frame.jobId, { length: total, past });
    if (this.last) {
      const logits = out.logits;
      if (logits?.type !== 'float32') throw new StageError('BAD_GRAPH', 'the last stage gives no float32 logits');
      const vocab = logits.dims.at(-1) ?? 0;
      return { kind: 'logits', data: logits.data.slice(logits.data.length - vocab) };
    }
    const hidden = out[HIDDEN_OUTPUT];
    if (hidden?.type !== 'float32') throw new StageError('BAD_GRAPH', `the stage gives no float32 ${HIDDEN_OUTPUT}`);
    return { kind: 'hidden', data: hidden.data, width: hidden.dims.at(-1) ?? 0 };
  }

  /** Forgets `jobId`'s cache. */
  drop(jobId: string): void {
    this.caches.delete(jobId);
  }

  private emptyPast(): Record<string, StageTensor> {
    const past: Record<string, StageTensor> = {};
    for (const name of this.pastNames) {
      const [heads, headDim] = this.pastDims.get(name) ?? [0, 0];
      past[name] = { type: 'float32', data: new Float32Array(0), dims: [1, heads, 0, headDim] };
    }
    return past;
  }
}
