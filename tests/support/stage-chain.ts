// Checking a model's stage graphs against the whole graph (tests/pipeline-split*.test.ts): random inputs with and
// without a past, the feeds a graph asks for, the stages run one after another with the hidden state of each feeding
// the next, and every output of the chain compared with the whole graph's.
import { expect } from 'vitest';
import { HIDDEN_INPUT, HIDDEN_OUTPUT } from '../../src/peer/splitter/split-graph.ts';
import { rng } from '../../scripts/tiny-model/weights.ts';
import type { StageSession, StageTensor } from '../../src/shared/pipeline/stage-session.ts';

// Same ops on the same shapes in the same order: the chain is expected to agree to the last bit or nearly; this
// bound (absolute, on logits of magnitude up to ~30) leaves room only for a kernel choosing another summation order.
export const TOLERANCE = 1e-4;

/** Seed, new tokens and past length of each comparison: a prompt with no past, a few tokens after one, one token. */
export const CHAIN_CASES = [
  [1, 7, 0],
  [2, 5, 9],
  [3, 1, 20],
] as const;

export interface ChainShape {
  layers: number;
  /** Heads of the KV cache: fewer than the query heads under grouped-query attention. */
  kvHeads: number;
  headDim: number;
  vocab: number;
}

export interface ChainInputs {
  ids: number[];
  past: number;
  cache: Map<number, { key: Float32Array; value: Float32Array }>;
}

export function randomInputs(shape: ChainShape, seed: number, seq: number, past: number): ChainInputs {
  const next = rng(seed);
  const ids = Array.from({ length: seq }, () => Math.floor(next() * shape.vocab));
  const cache = new Map<number, { key: Float32Array; value: Float32Array }>();
  const n = shape.kvHeads * past * shape.headDim;
  for (let l = 0; l < shape.layers; l++) {
    const random = () => Float32Array.from({ length: n }, () => next() * 2 - 1);
    cache.set(l, { key: random(), value: random() });
  }
  return { ids, past, cache };
}

/** The feeds for inputs `names` (a past as float32; `hidden`, the previous stage's output, for the hidden input). */
export function feedsFor(
  shape: ChainShape,
  names: readonly string[],
  inputs: ChainInputs,
  hidden?: StageTensor,
): Record<string, StageTensor> {
  const seq = inputs.ids.length;
  const total = inputs.past + seq;
  const feeds: Record<string, StageTensor> = {};
  for (const name of names) {
    const cache = /^past_key_values\.(\d+)\.(key|value)$/.exec(name);
    if (name === 'input_ids')
      feeds[name] = { type: 'int64', data: BigInt64Array.from(inputs.ids, BigInt), dims: [1, seq] };
    else if (name === 'attention_mask')
      feeds[name] = { type: 'int64', data: new BigInt64Array(total).fill(1n), dims: [1, total] };
    else if (name === 'position_ids')
      feeds[name] = {
        type: 'int64',
        data: BigInt64Array.from({ length: seq }, (_, i) => BigInt(inputs.past + i)),
        dims: [1, seq],
      };
    else if (name === HIDDEN_INPUT && hidden) feeds[name] = hidden;
    else if (cache) {
      const entry = inputs.cache.get(Number(cache[1]));
      const data = cache[2] === 'key' ? entry?.key : entry?.value;
      if (!data) throw new Error(`no past for ${name}`);
      feeds[name] = { type: 'float32', data, dims: [1, shape.kvHeads, inputs.past, shape.headDim] };
    } else throw new Error(`no feed for ${name}`);
  }
  return feeds;
}

const sessionFeeds = (shape: ChainShape, session: StageSession, inputs: ChainInputs, hidden?: StageTensor) =>
  feedsFor(
    shape,
    session.inputs.map((input) => input.name),
    inputs,
    hidden,
  );

/** Runs `stages` one after another, the hidden state of each feeding the next; all their outputs together. */
export async function chain(
  shape: ChainShape,
  stages: StageSession[],
  inputs: ChainInputs,
): Promise<Record<string, StageTensor>> {
  const all: Record<string, StageTensor> = {};
  let hidden: StageTensor | undefined;
  for (const stage of stages) {
    const out = await stage.run(sessionFeeds(shape, stage, inputs, hidden));
    hidden = out[HIDDEN_OUTPUT];
    for (const [name, tensor] of Object.entries(out)) if (name !== HIDDEN_OUTPUT) all[name] = tensor;
  }
  return all;
}

/** The largest absolute difference of two float arrays of one length. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return max;
}

export function maxDifference(a: StageTensor | undefined, b: StageTensor | undefined): number {
  if (!a || !b || a.type !== 'float32' || b.type !== 'float32') throw new Error('missing float32 output');
  expect(b.dims).toEqual(a.dims);
  return maxAbsDifference(a.data, b.data);
}

/** Every output of the chained `stages` equals the `whole` graph's within TOLERANCE, on each of CHAIN_CASES. */
export async function expectChainEqualsWhole(shape: ChainShape, whole: StageSession, stages: StageSession[]) {
  for (const [seed, seq, past] of CHAIN_CASES) {
    const inputs = randomInputs(shape, seed, seq, past);
    const expected = await whole.run(sessionFeeds(shape, whole, inputs));
    const actual = await chain(shape, stages, inputs);
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
    for (const name of Object.keys(expected))
      expect(maxDifference(expected[name], actual[name]), `${name} (seq ${seq}, past ${past})`).toBeLessThanOrEqual(
        TOLERANCE,
      );
  }
}
