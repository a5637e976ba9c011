// Writes stage graphs beside a model, with a manifest (`onnx/stages.json`) that a stage's host reads to know which
// file holds which layers (docs/pipeline.md).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { graphVersion } from './graph-digest.ts';
import { writeOnnx } from './onnx-file.ts';
import { HIDDEN_INPUT, HIDDEN_OUTPUT, type StageGraph } from './split-graph.ts';

export interface StageManifest {
  format: 'mesh-nanollm-stages';
  version: 1;
  layers: number;
  /** The model version the stages were cut from: graphVersion of the whole graph (docs/pipeline.md#stage-fingerprints). */
  source?: string;
  stages: {
    index: number;
    layers: [number, number];
    file: string;
    /** The external data file, when the weights are not inline. */
    data?: string;
    /** graphVersion of the stage's files (its graph, then its data): a peer holding it checks its copy against it. */
    sha256?: string;
    inputs: string[];
    outputs: string[];
  }[];
}

export const STAGE_MANIFEST = 'stages.json';

/** Writes `stages` into `dir` as `stage-<i>-of-<n>.onnx` (and `.onnx_data` with `externalData`), plus the manifest. */
export async function writeStages(
  dir: string,
  stages: StageGraph[],
  options: { externalData?: boolean; /** graphVersion of the whole graph they were cut from. */ source?: string } = {},
): Promise<StageManifest> {
  await mkdir(dir, { recursive: true });
  const manifest: StageManifest = {
    format: 'mesh-nanollm-stages',
    version: 1,
    layers: 0,
    ...(options.source ? { source: options.source } : {}),
    stages: [],
  };
  for (const stage of stages) {
    const file = `stage-${stage.index}-of-${stages.length}.onnx`;
    const data = options.externalData ? `${file}_data` : undefined;
    await writeOnnx(path.join(dir, file), stage.model, data ? { externalData: data } : {});
    manifest.layers = Math.max(manifest.layers, stage.layers[1]);
    manifest.stages.push({
      index: stage.index,
      layers: stage.layers,
      file,
      ...(data ? { data } : {}),
      sha256: await graphVersion(path.join(dir, file)),
      inputs: (stage.model.graph?.input ?? []).map((i) => i.name ?? ''),
      outputs: (stage.model.graph?.output ?? []).map((o) => o.name ?? ''),
    });
  }
  await writeFile(path.join(dir, STAGE_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

export { HIDDEN_INPUT, HIDDEN_OUTPUT };
