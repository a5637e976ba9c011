// A generated model with stage files in its repo, published on a fake Hub and named by a catalogue file that lists
// every file (docs/pipeline.md, "Stage files"); and the page driver of browser stages (pipeline-page.ts) bundled
// for a test or benchmark page.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { type FakeHub, bufferContent } from '../../scripts/fake-hub.ts';
import { evenBoundaries } from '../../src/peer/splitter/split-graph.ts';
import { writeStages } from '../../src/peer/splitter/stage-files.ts';
import { type GenerateOptions, generateRandomModel } from '../../scripts/tiny-model/generate.ts';
import { buildStageGraphs } from '../../scripts/tiny-model/stages.ts';
import type { EngineModel } from '../../src/shared/engine-protocol.ts';
import { MODEL_FILES } from './model-fixtures.ts';
import { ROOT } from './server-process.ts';

export interface StagedModel {
  /** The whole model as the engine loads it, pinned to the fake Hub's commit. */
  model: EngineModel;
  /** Stage count to the repo path of its stage manifest. */
  manifests: Record<number, string>;
  /** The catalogue file (`MANIFEST_PATH`) naming the model with all its files. */
  manifestPath: string;
}

/**
 * Generates `id` into `dir/<id>` with a layer-count-sized cut into `stages` (2 stages in `onnx/`, inline weights;
 * other counts in `onnx/stages-<n>/`, with external data), plus `onnx/whole.stages.json`, the whole `model.onnx`
 * as one stage; publishes the repo as `mesh/<id>`.
 */
export async function publishStagedModel(
  hub: FakeHub,
  dir: string,
  id: string,
  options: GenerateOptions & { layers: number; maxPositions: number },
  stages: number[],
): Promise<StagedModel> {
  const local = path.join(dir, id);
  const { weights } = await generateRandomModel(local, options);
  const manifests: Record<number, string> = { 1: 'onnx/whole.stages.json' };
  const files = [...MODEL_FILES, manifests[1]!];
  await writeFile(
    path.join(local, manifests[1]!),
    JSON.stringify({
      format: 'mesh-nanollm-stages',
      version: 1,
      layers: options.layers,
      stages: [{ index: 0, layers: [0, options.layers], file: 'model.onnx', inputs: [], outputs: [] }],
    }),
  );
  for (const count of stages) {
    const folder = count === 2 ? 'onnx' : `onnx/stages-${count}`;
    const manifest = await writeStages(
      path.join(local, folder),
      buildStageGraphs(weights, evenBoundaries(options.layers, count)),
      { externalData: count !== 2 },
    );
    manifests[count] = `${folder}/stages.json`;
    files.push(
      manifests[count],
      ...manifest.stages.flatMap((s) => [s.file, s.data ?? []].flat().map((f) => `${folder}/${f}`)),
    );
  }
  const repo = `mesh/${id}`;
  const { commit } = await hub.addRepo(
    repo,
    Object.fromEntries(
      await Promise.all(files.map(async (f) => [f, bufferContent(await readFile(path.join(local, f)))] as const)),
    ),
  );
  const manifestPath = path.join(dir, `${id}.manifest.json`);
  const dtype = { webgpu: 'fp32', wasm: 'fp32' } as const;
  await writeFile(
    manifestPath,
    JSON.stringify({
      mode: 'extend',
      models: [
        {
          id,
          name: `Generated ${id} with stages`,
          repo,
          revision: 'main',
          task: 'text-generation',
          dtype,
          contextLength: options.maxPositions,
          license: 'mit',
          // The stage files are files of the repo, listed like the others: downloaded, verified, served by the proxy.
          files: files.map((p) => ({ path: p })),
        },
      ],
    }),
  );
  return {
    model: { id, repo, revision: commit, dtype, files: MODEL_FILES, contextLength: options.maxPositions },
    manifests,
    manifestPath,
  };
}

/** The page driver (`globalThis.meshStages`) as one ES module script. */
export async function stagePageBundle(): Promise<string> {
  const built = await build({
    entryPoints: [path.join(ROOT, 'tests/support/pipeline-page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
  });
  return built.outputFiles[0]!.text;
}
