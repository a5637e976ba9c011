// The graph splitter (scripts/pipeline/split-graph.ts, docs/pipeline.md) on models shaped like real exports
// (scripts/tiny-model/export-shapes.ts): grouped-query attention (a KV cache of fewer heads than the queries),
// the `position_ids` input, weights in an external data file or in two chunks, and 4-bit MatMulNBits projections.
// Each is cut into two stages; chained, they give the whole graph's logits and every `present` on random inputs,
// with and without a past, as tests/pipeline-split.test.ts shows for the plain generated model.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOnnx } from '../scripts/pipeline/onnx-file.ts';
import {
  HIDDEN_INPUT,
  HIDDEN_OUTPUT,
  countLayers,
  evenBoundaries,
  splitModel,
} from '../scripts/pipeline/split-graph.ts';
import { writeStages } from '../scripts/pipeline/stage-files.ts';
import { EXPORT_SHAPES, writeExportModel } from '../scripts/tiny-model/export-shapes.ts';
import { fromHalfBits, toHalf } from '../scripts/tiny-model/quantize.ts';
import { rng } from '../scripts/tiny-model/weights.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import type { StageSession, StageTensor } from '../src/shared/pipeline/stage-session.ts';

/** As in tests/pipeline-split.test.ts: room only for a kernel choosing another summation order. */
const TOLERANCE = 1e-4;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-split-export-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Shape {
  layers: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

interface Inputs {
  ids: number[];
  past: number;
  cache: Map<number, { key: Float32Array; value: Float32Array }>;
}

function randomInputs(shape: Shape, seed: number, seq: number, past: number): Inputs {
  const next = rng(seed);
  const ids = Array.from({ length: seq }, () => Math.floor(next() * shape.vocab));
  const cache = new Map<number, { key: Float32Array; value: Float32Array }>();
  // Grouped-query attention: the cache holds kvHeads heads, not the query heads.
  const n = shape.kvHeads * past * shape.headDim;
  for (let l = 0; l < shape.layers; l++) {
    const random = () => Float32Array.from({ length: n }, () => next() * 2 - 1);
    cache.set(l, { key: random(), value: random() });
  }
  return { ids, past, cache };
}

function feedsFor(
  shape: Shape,
  session: StageSession,
  inputs: Inputs,
  hidden?: StageTensor,
): Record<string, StageTensor> {
  const seq = inputs.ids.length;
  const total = inputs.past + seq;
  const feeds: Record<string, StageTensor> = {};
  for (const { name } of session.inputs) {
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

async function chain(shape: Shape, stages: StageSession[], inputs: Inputs): Promise<Record<string, StageTensor>> {
  const all: Record<string, StageTensor> = {};
  let hidden: StageTensor | undefined;
  for (const stage of stages) {
    const out = await stage.run(feedsFor(shape, stage, inputs, hidden));
    hidden = out[HIDDEN_OUTPUT];
    for (const [name, tensor] of Object.entries(out)) if (name !== HIDDEN_OUTPUT) all[name] = tensor;
  }
  return all;
}

function maxDifference(a: StageTensor | undefined, b: StageTensor | undefined): number {
  if (!a || !b || a.type !== 'float32' || b.type !== 'float32') throw new Error('missing float32 output');
  expect(b.dims).toEqual(a.dims);
  let max = 0;
  for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs((a.data[i] ?? 0) - (b.data[i] ?? 0)));
  return max;
}

/** A float16 tensor's values as float32 (ONNX Runtime hands float16 data over as its bits, a Uint16Array). */
function asFloats(tensor: ort.Tensor | undefined): Float32Array {
  if (!tensor) throw new Error('missing output');
  if (tensor.type === 'float32') return tensor.data as Float32Array;
  if (tensor.type === 'float16') return Float32Array.from(tensor.data as Uint16Array, fromHalfBits);
  throw new Error(`unexpected ${tensor.type} output`);
}

/**
 * The float16 variants' chain, straight on onnxruntime-node (the stage runtime, src/shared/pipeline, exchanges
 * float32 and int64 only; a float16 cache stays inside each stage, and the residual stream between stages is
 * float32 in these graphs as in real fp16 exports' float32 islands: only the cache and logits are float16).
 */
async function halfChain(shape: Shape, whole: string, files: string[]) {
  const open = (file: string) => ort.InferenceSession.create(file);
  const [wholeSession, ...stageSessions] = await Promise.all([open(whole), ...files.map(open)]);
  if (!wholeSession) throw new Error('no whole graph');
  const feeds = (session: ort.InferenceSession, inputs: Inputs, hidden?: ort.Tensor) => {
    const seq = inputs.ids.length;
    const out: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const cache = /^past_key_values\.(\d+)\.(key|value)$/.exec(name);
      if (name === 'input_ids') out[name] = new ort.Tensor('int64', BigInt64Array.from(inputs.ids, BigInt), [1, seq]);
      else if (name === 'attention_mask')
        out[name] = new ort.Tensor('int64', new BigInt64Array(inputs.past + seq).fill(1n), [1, inputs.past + seq]);
      else if (name === 'position_ids')
        out[name] = new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: seq }, (_, i) => BigInt(inputs.past + i)),
          [1, seq],
        );
      else if (name === HIDDEN_INPUT && hidden) out[name] = hidden;
      else if (cache) {
        const entry = inputs.cache.get(Number(cache[1]));
        const data = cache[2] === 'key' ? entry?.key : entry?.value;
        if (!data) throw new Error(`no past for ${name}`);
        out[name] = new ort.Tensor('float16', toHalf(data), [1, shape.kvHeads, inputs.past, shape.headDim]);
      } else throw new Error(`no feed for ${name}`);
    }
    return out;
  };
  try {
    for (const [seed, seq, past] of [
      [1, 7, 0],
      [2, 5, 9],
      [3, 1, 20],
    ] as const) {
      const inputs = randomInputs(shape, seed, seq, past);
      const expected = await wholeSession.run(feeds(wholeSession, inputs));
      const actual: Record<string, ort.Tensor> = {};
      let hidden: ort.Tensor | undefined;
      for (const stage of stageSessions) {
        const out = await stage.run(feeds(stage, inputs, hidden));
        hidden = out[HIDDEN_OUTPUT];
        for (const [name, tensor] of Object.entries(out)) if (name !== HIDDEN_OUTPUT) actual[name] = tensor;
      }
      expect(hidden).toBeUndefined();
      expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
      expect(expected.logits?.type).toBe('float16');
      for (const name of Object.keys(expected)) {
        expect(actual[name]?.type, name).toBe(expected[name]?.type);
        expect(actual[name]?.dims, name).toEqual(expected[name]?.dims);
        const a = asFloats(expected[name]);
        const b = asFloats(actual[name]);
        let max = 0;
        for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
        expect(max, `${name} (seq ${seq}, past ${past})`).toBeLessThanOrEqual(TOLERANCE);
      }
    }
  } finally {
    await Promise.all([wholeSession, ...stageSessions].map((s) => s.release()));
  }
}

describe('the graph splitter on export-shaped models', () => {
  it.each(['gqa-external', 'gqa-chunked', 'q4'] as const)(
    'cuts %s into two stages whose chain equals the whole graph',
    async (name) => {
      const variant = EXPORT_SHAPES[name];
      const modelDir = path.join(dir, name);
      const { weights, files } = await writeExportModel(modelDir, variant);
      const graphFile = files.find((file) => file.endsWith('.onnx')) ?? '';
      const external = files.filter((file) => file.includes('.onnx_data'));
      expect(external.length).toBe('externalData' in variant ? variant.externalData.chunks : 0);
      const { config } = weights;
      const shape: Shape = {
        layers: config.layers,
        kvHeads: config.kvHeads ?? config.heads,
        headDim: config.hidden / config.heads,
        vocab: config.vocab,
      };
      expect(shape.kvHeads).toBeLessThan(config.heads);

      const file = path.join(modelDir, graphFile);
      const model = await readOnnx(file);
      const inputs = (model.graph?.input ?? []).map((input) => input.name);
      expect(inputs).toContain('position_ids');
      expect(countLayers(model.graph ?? {})).toBe(shape.layers);
      const graphs = splitModel(model, { boundaries: evenBoundaries(shape.layers, 2) });
      expect(graphs.map((g) => g.layers)).toEqual([
        [0, 1],
        [1, 2],
      ]);
      const out = path.join(modelDir, 'stages');
      const manifest = await writeStages(out, graphs, { externalData: external.length > 0 });
      expect(manifest.stages.map((s) => s.inputs.includes('position_ids'))).toEqual([true, true]);
      if (external.length > 0) expect((await readdir(out)).filter((f) => f.endsWith('.onnx_data'))).toHaveLength(2);

      const whole = await openOrtStage(file);
      const stages = await Promise.all(manifest.stages.map((s) => openOrtStage(path.join(out, s.file))));
      try {
        for (const [seed, seq, past] of [
          [1, 7, 0],
          [2, 5, 9],
          [3, 1, 20],
        ] as const) {
          const feeds = randomInputs(shape, seed, seq, past);
          const expected = await whole.run(feedsFor(shape, whole, feeds));
          const actual = await chain(shape, stages, feeds);
          expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
          for (const output of Object.keys(expected)) {
            expect(
              maxDifference(expected[output], actual[output]),
              `${output} (seq ${seq}, past ${past})`,
            ).toBeLessThanOrEqual(TOLERANCE);
          }
        }
      } finally {
        await Promise.all([whole, ...stages].map((s) => s.release()));
      }
    },
    120_000,
  );

  it.each(['fp16', 'q4f16'] as const)(
    'cuts %s (float16 weights read through a Cast, a float16 cache and logits) into two stages whose chain equals the whole graph',
    async (name) => {
      const variant = EXPORT_SHAPES[name];
      const modelDir = path.join(dir, name);
      const { weights, files } = await writeExportModel(modelDir, variant);
      const graphFile = files.find((file) => file.endsWith('.onnx')) ?? '';
      const { config } = weights;
      const shape: Shape = {
        layers: config.layers,
        kvHeads: config.kvHeads ?? config.heads,
        headDim: config.hidden / config.heads,
        vocab: config.vocab,
      };
      const file = path.join(modelDir, graphFile);
      const graphs = splitModel(await readOnnx(file), { boundaries: evenBoundaries(shape.layers, 2) });
      expect(graphs.map((g) => g.layers)).toEqual([
        [0, 1],
        [1, 2],
      ]);
      const external = files.some((f) => f.includes('.onnx_data'));
      const manifest = await writeStages(path.join(modelDir, 'stages'), graphs, { externalData: external });
      await halfChain(
        shape,
        file,
        manifest.stages.map((s) => path.join(modelDir, 'stages', s.file)),
      );
    },
    120_000,
  );
});
