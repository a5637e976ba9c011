// Stage graphs are the whole model cut in pieces: the splitter's stages (from a whole-model export with its weights
// inline or in an external data file) and the generator's stages, chained layer range after layer range, give the
// whole graph's logits and KV cache on random inputs, with and without a past; the generator's also the TypeScript
// reference forward pass's logits.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOnnx, writeOnnx } from '../src/peer/splitter/onnx-file.ts';
import { countLayers, evenBoundaries, splitModel } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { lastLogits } from '../scripts/tiny-model/reference.ts';
import { generateStagedModel } from '../scripts/tiny-model/stages.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import {
  type ChainShape,
  chain,
  expectChainEqualsWhole,
  maxAbsDifference,
  randomInputs,
} from './support/stage-chain.ts';

const CONFIG = { layers: 4, hidden: 64, heads: 4, seed: 5, vocab: 300, maxPositions: 64 };
const SHAPE: ChainShape = {
  layers: CONFIG.layers,
  kvHeads: CONFIG.heads,
  headDim: CONFIG.hidden / CONFIG.heads,
  vocab: CONFIG.vocab,
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-split-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the graph splitter', () => {
  it.each([
    { stages: 2, externalData: false },
    { stages: 3, externalData: true },
  ])(
    'cuts a whole-model export into $stages stages whose chain equals the whole graph (external data: $externalData)',
    async ({ stages: count, externalData }) => {
      const modelDir = path.join(dir, `split-${count}`);
      await generateRandomModel(modelDir, CONFIG);
      const file = path.join(modelDir, 'onnx', 'model.onnx');
      if (externalData) {
        // The export as large models ship: graph and weights in two files.
        await writeOnnx(file, await readOnnx(file), { externalData: 'model.onnx_data' });
        expect((await stat(file)).size).toBeLessThan(64 * 1024);
      }
      const model = await readOnnx(file);
      expect(countLayers(model.graph ?? {})).toBe(CONFIG.layers);
      const graphs = splitModel(model, { boundaries: evenBoundaries(CONFIG.layers, count) });
      expect(graphs.map((g) => g.layers)).toEqual(
        count === 2
          ? [
              [0, 2],
              [2, 4],
            ]
          : [
              [0, 2],
              [2, 3],
              [3, 4],
            ],
      );
      // Each stage holds its own weights only: together no more than the whole, and no layer twice.
      const names = graphs.flatMap((g) => (g.model.graph?.initializer ?? []).map((t) => t.name ?? ''));
      const layerWeights = names.filter((n) => n.startsWith('layers.'));
      expect(new Set(layerWeights).size).toBe(layerWeights.length);
      expect(names).toContain('embed_tokens');
      expect(graphs[0]?.model.graph?.initializer?.some((t) => t.name === 'lm_head')).toBe(false);
      expect(graphs.at(-1)?.model.graph?.initializer?.some((t) => t.name === 'lm_head')).toBe(true);

      const out = path.join(modelDir, 'stages');
      const manifest = await writeStages(out, graphs, { externalData });
      expect(manifest.stages.map((s) => s.inputs.includes('input_ids'))).toEqual(graphs.map((_, i) => i === 0));
      if (externalData) expect((await readdir(out)).filter((f) => f.endsWith('.onnx_data'))).toHaveLength(count);
      const whole = await openOrtStage(file);
      const stages = await Promise.all(manifest.stages.map((s) => openOrtStage(path.join(out, s.file))));
      await expectChainEqualsWhole(SHAPE, whole, stages);
      await Promise.all([whole, ...stages].map((s) => s.release()));
    },
    120_000,
  );

  it("cuts an export named as Optimum names Llama's (anonymous MatMul weights, model.layers.N norms)", async () => {
    const modelDir = path.join(dir, 'optimum-names');
    await generateRandomModel(modelDir, CONFIG);
    const file = path.join(modelDir, 'onnx', 'model.onnx');
    const model = await readOnnx(file);
    // Optimum's exports name the norms' weights after the module and leave the projections' weights anonymous.
    let anonymous = 1000;
    const names = new Map<string, string>();
    for (const tensor of model.graph?.initializer ?? []) {
      const name = tensor.name ?? '';
      const norm = /^layers\.(\d+)\.(input_layernorm|post_attention_layernorm)$/.exec(name);
      const renamed = norm
        ? `model.layers.${norm[1]}.${norm[2]}.weight`
        : name === 'embed_tokens'
          ? 'model.embed_tokens.weight'
          : name === 'norm'
            ? 'model.norm.weight'
            : /_proj$|^lm_head$/.test(name)
              ? `onnx::MatMul_${anonymous++}`
              : name;
      names.set(name, renamed);
      tensor.name = renamed;
    }
    for (const node of model.graph?.node ?? []) node.input = (node.input ?? []).map((i) => names.get(i) ?? i);
    await writeOnnx(file, model, { externalData: 'model.onnx_data' });
    const renamed = await readOnnx(file);
    expect(countLayers(renamed.graph ?? {})).toBe(CONFIG.layers);
    const whole = await openOrtStage(file);
    for (const count of [2, 3]) {
      const out = path.join(modelDir, `stages-${count}`);
      const manifest = await writeStages(
        out,
        splitModel(renamed, { boundaries: evenBoundaries(CONFIG.layers, count) }),
        {
          externalData: true,
        },
      );
      const stages = await Promise.all(manifest.stages.map((s) => openOrtStage(path.join(out, s.file))));
      await expectChainEqualsWhole(SHAPE, whole, stages);
      await Promise.all(stages.map((s) => s.release()));
    }
    await whole.release();
  }, 120_000);

  it('refuses boundaries outside the layers and cuts that are not the residual stream', async () => {
    const modelDir = path.join(dir, 'refusals');
    await generateRandomModel(modelDir, CONFIG);
    const model = await readOnnx(path.join(modelDir, 'onnx', 'model.onnx'));
    expect(() => splitModel(model, { boundaries: [0] })).toThrow(/ascend within 1..3/);
    expect(() => splitModel(model, { boundaries: [3, 2] })).toThrow(/ascend/);
    // The query projection's output is inside layer 2: stage 1 would then need layer 1's weights.
    const inside = model.graph?.node?.find((n) => n.input?.includes('layers.2.q_proj'))?.output?.[0] ?? '';
    expect(() => splitModel(model, { boundaries: [2], cuts: { 2: inside } })).toThrow(/not the residual stream/);
  });
});

describe("the generator's stage graphs", () => {
  it('chained, equal the whole graph and the reference forward pass', async () => {
    const modelDir = path.join(dir, 'generated');
    const { weights, manifest } = await generateStagedModel(modelDir, { ...CONFIG, stages: 3, externalData: true });
    const onnxDir = path.join(modelDir, 'onnx');
    const whole = await openOrtStage(path.join(onnxDir, 'model.onnx'));
    const stages = await Promise.all(manifest.stages.map((s) => openOrtStage(path.join(onnxDir, s.file))));
    await expectChainEqualsWhole(SHAPE, whole, stages);
    const inputs = randomInputs(SHAPE, 9, 6, 0);
    const logits = (await chain(SHAPE, stages, inputs)).logits;
    const reference = lastLogits(weights, inputs.ids);
    const last = logits?.data.slice(-CONFIG.vocab) as Float32Array;
    expect(maxAbsDifference(reference, last)).toBeLessThan(1e-3);
    await Promise.all([whole, ...stages].map((s) => s.release()));
  }, 120_000);
});
