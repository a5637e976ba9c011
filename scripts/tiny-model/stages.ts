// npx tsx scripts/tiny-model/stages.ts --out DIR (--stages N | --boundaries 2,4) [generate.ts's options]
// Generates a tiny model (generate.ts) and its stage graphs beside it (onnx/stage-<i>-of-<n>.onnx and
// onnx/stages.json): stage 0 holds the embeddings, the last the final norm and the LM head, each its layers'
// KV cache (docs/pipeline.md). The stages are cut from the very graph buildGraph makes, so every variant of the
// generator has its stage graphs too.
import path from 'node:path';
import { parseArgs } from 'node:util';
import onnxProto from 'onnx-proto';
import { evenBoundaries, splitModel, type StageGraph } from '../../src/peer/splitter/split-graph.ts';
import { graphVersion } from '../../src/peer/splitter/graph-digest.ts';
import { type StageManifest, writeStages } from '../../src/peer/splitter/stage-files.ts';
import { type GenerateOptions, generateRandomModel } from './generate.ts';
import { buildGraph } from './onnx-graph.ts';
import type { TinyWeights } from './weights.ts';

/** The stage graphs of `weights`' decoder, cut before each layer in `boundaries`. */
export function buildStageGraphs(weights: TinyWeights, boundaries: readonly number[]): StageGraph[] {
  const whole = onnxProto.onnx.ModelProto.decode(buildGraph(weights));
  return splitModel(whole, { boundaries });
}

/** Generates a model into `dir` (as generate.ts does) and its stage graphs into `dir/onnx`. */
export async function generateStagedModel(
  dir: string,
  options: GenerateOptions & { stages?: number; boundaries?: number[]; externalData?: boolean },
): Promise<{ weights: TinyWeights; manifest: StageManifest }> {
  const { weights } = await generateRandomModel(dir, options);
  const boundaries = options.boundaries ?? evenBoundaries(weights.config.layers, options.stages ?? 2);
  const manifest = await writeStages(path.join(dir, 'onnx'), buildStageGraphs(weights, boundaries), {
    externalData: options.externalData ?? false,
    source: await graphVersion(path.join(dir, 'onnx', 'model.onnx')),
  });
  return { weights, manifest };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      stages: { type: 'string' },
      boundaries: { type: 'string' },
      layers: { type: 'string' },
      hidden: { type: 'string' },
      heads: { type: 'string' },
      positions: { type: 'string' },
      seed: { type: 'string' },
      vocab: { type: 'string' },
      'external-data': { type: 'boolean', default: false },
    },
  });
  if (!values.out) {
    console.error('Usage: tsx scripts/tiny-model/stages.ts --out DIR (--stages N | --boundaries 2,4) [--layers N ...]');
    process.exit(2);
  }
  const num = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  const { manifest } = await generateStagedModel(values.out, {
    layers: num(values.layers),
    hidden: num(values.hidden),
    heads: num(values.heads),
    maxPositions: num(values.positions),
    seed: num(values.seed),
    vocab: num(values.vocab),
    stages: num(values.stages),
    boundaries: values.boundaries?.split(',').map(Number),
    externalData: values['external-data'],
  });
  for (const stage of manifest.stages) console.log(`${stage.file}: layers ${stage.layers[0]}..${stage.layers[1] - 1}`);
}
