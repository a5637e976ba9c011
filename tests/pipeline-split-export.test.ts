// The graph splitter (src/peer/splitter/split-graph.ts, docs/pipeline.md) on models shaped like real exports
// (scripts/tiny-model/export-shapes.ts): grouped-query attention (a KV cache of fewer heads than the queries),
// the `position_ids` input, weights in an external data file or in two chunks, and 4-bit MatMulNBits projections.
// Each is cut into two stages; chained, they give the whole graph's logits and every `present` on random inputs,
// with and without a past, as tests/pipeline-split.test.ts shows for the plain generated model.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOnnx } from '../src/peer/splitter/onnx-file.ts';
import {
  HIDDEN_INPUT,
  HIDDEN_OUTPUT,
  countLayers,
  evenBoundaries,
  splitModel,
} from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { EXPORT_SHAPES, writeExportModel } from '../scripts/tiny-model/export-shapes.ts';
import { fromHalfBits, toHalf } from '../scripts/tiny-model/quantize.ts';
import type { TinyConfig } from '../scripts/tiny-model/weights.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import {
  CHAIN_CASES,
  type ChainInputs,
  type ChainShape,
  TOLERANCE,
  expectChainEqualsWhole,
  feedsFor,
  maxAbsDifference,
  randomInputs,
} from './support/stage-chain.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-split-export-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

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
async function halfChain(shape: ChainShape, whole: string, files: string[]) {
  const open = (file: string) => ort.InferenceSession.create(file);
  const [wholeSession, ...stageSessions] = await Promise.all([open(whole), ...files.map(open)]);
  if (!wholeSession) throw new Error('no whole graph');
  // The float32 feeds as ONNX Runtime tensors, the past as float16 (the cache these graphs keep).
  const feeds = (session: ort.InferenceSession, inputs: ChainInputs, hidden?: ort.Tensor) => {
    const names = session.inputNames.filter((name) => name !== HIDDEN_INPUT);
    const out: Record<string, ort.Tensor> = {};
    for (const [name, feed] of Object.entries(feedsFor(shape, names, inputs))) {
      out[name] =
        feed.type === 'float32'
          ? new ort.Tensor('float16', toHalf(feed.data), feed.dims)
          : new ort.Tensor(feed.type, feed.data, feed.dims);
    }
    if (hidden && session.inputNames.includes(HIDDEN_INPUT)) out[HIDDEN_INPUT] = hidden;
    return out;
  };
  try {
    for (const [seed, seq, past] of CHAIN_CASES) {
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
        const max = maxAbsDifference(asFloats(expected[name]), asFloats(actual[name]));
        expect(max, `${name} (seq ${seq}, past ${past})`).toBeLessThanOrEqual(TOLERANCE);
      }
    }
  } finally {
    await Promise.all([wholeSession, ...stageSessions].map((s) => s.release()));
  }
}

/** What the chain's inputs depend on in a model's config: the KV cache has `kvHeads` heads under grouped-query attention. */
function shapeOf(config: TinyConfig): ChainShape {
  return {
    layers: config.layers,
    kvHeads: config.kvHeads ?? config.heads,
    headDim: config.hidden / config.heads,
    vocab: config.vocab,
  };
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
      const shape = shapeOf(config);
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
        await expectChainEqualsWhole(shape, whole, stages);
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
      const shape = shapeOf(weights.config);
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
