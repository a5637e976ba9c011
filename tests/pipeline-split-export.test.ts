// The graph splitter (scripts/pipeline/split-graph.ts, docs/pipeline.md) on models shaped like real exports
// (scripts/tiny-model/export-shapes.ts): grouped-query attention (a KV cache of fewer heads than the queries),
// the `position_ids` input, weights in an external data file or in two chunks, and 4-bit MatMulNBits projections.
// Each is cut into two stages; chained, they give the whole graph's logits and every `present` on random inputs,
// with and without a past, as tests/pipeline-split.test.ts shows for the plain generated model.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
});
