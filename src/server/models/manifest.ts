// The model catalogue: curated models that run in transformers.js in a browser, replaceable or extendable by
// operators with a JSON file (MANIFEST_PATH), validated at start-up.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { type ManifestEntry, ManifestEntrySchema, ManifestFileFormatSchema } from '../../shared/schemas/models.ts';
import { ConfigError } from '../env.ts';

export class ManifestError extends ConfigError {
  override name = 'ManifestError';
}

function hubModel(
  entry: Omit<ManifestEntry, 'files' | 'task' | 'bundled' | 'demo' | 'description'> & { description: string },
) {
  return ManifestEntrySchema.parse({
    ...entry,
    task: 'text-generation',
    // No file list: the server derives it from the repo at the pinned commit as transformers.js does
    // (transformers-files.ts), so q8's `model_quantized.onnx` and external data files are found, not guessed.
    files: [],
  });
}

/**
 * Built-in catalogue. Revisions name a branch: the first download resolves it to a commit and pins that commit
 * (sizes and sha256 come from the Hub's tree at that commit, not from here). Where each repo, dtype, context
 * length, parameter count and license was checked: docs/CATALOGUE.md.
 */
export const BUILTIN_MANIFEST: ManifestEntry[] = [
  hubModel({
    id: 'smollm2-135m-instruct',
    name: 'SmolLM2 135M Instruct',
    description: 'Tiny and quick; fine for short chats on any device.',
    repo: 'HuggingFaceTB/SmolLM2-135M-Instruct',
    revision: 'main',
    dtype: { webgpu: 'q4f16', wasm: 'q4' },
    contextLength: 8192,
    parameters: '135M',
    license: 'apache-2.0',
  }),
  hubModel({
    id: 'smollm2-360m-instruct',
    name: 'SmolLM2 360M Instruct',
    description: 'Better answers than 135M, still light enough for most laptops.',
    repo: 'HuggingFaceTB/SmolLM2-360M-Instruct',
    revision: 'main',
    dtype: { webgpu: 'q4f16', wasm: 'q4' },
    contextLength: 8192,
    parameters: '360M',
    license: 'apache-2.0',
  }),
  hubModel({
    id: 'qwen2.5-0.5b-instruct',
    name: 'Qwen2.5 0.5B Instruct',
    description: 'Multilingual, long context; best on WebGPU.',
    repo: 'onnx-community/Qwen2.5-0.5B-Instruct',
    revision: 'main',
    dtype: { webgpu: 'q4f16', wasm: 'q4' },
    contextLength: 32768,
    parameters: '494M',
    license: 'apache-2.0',
  }),
  hubModel({
    id: 'llama-3.2-1b-instruct',
    name: 'Llama 3.2 1B Instruct',
    description: 'The strongest here; wants a WebGPU device with 2 GB to spare.',
    repo: 'onnx-community/Llama-3.2-1B-Instruct',
    revision: 'main',
    dtype: { webgpu: 'q4f16', wasm: 'q4' },
    contextLength: 131072,
    parameters: '1.24B',
    license: 'llama3.2',
  }),
];

/** The catalogue in force: the built-in one, replaced or extended (by id) by the file at `path`. */
export async function loadManifest(path: string | undefined, builtin = BUILTIN_MANIFEST): Promise<ManifestEntry[]> {
  if (!path) return builtin;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ManifestError(`Invalid MANIFEST_PATH ${path}: ${(error as Error).message}`, { cause: error });
  }
  const parsed = ManifestFileFormatSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'file';
    throw new ManifestError(
      `Invalid MANIFEST_PATH ${path}: ${where}: ${issue?.message ?? z.prettifyError(parsed.error)}`,
    );
  }
  let models = parsed.data.models;
  if (parsed.data.mode !== 'replace') {
    const byId = new Map(builtin.map((entry) => [entry.id, entry]));
    for (const entry of models) byId.set(entry.id, entry);
    models = [...byId.values()];
  }
  // Cached files are keyed by repo and commit: two entries on one repo would share (and delete) each other's.
  const repos = new Map<string, string>();
  for (const entry of models) {
    const other = repos.get(entry.repo.toLowerCase());
    if (other)
      throw new ManifestError(
        `Invalid MANIFEST_PATH ${path}: models ${other} and ${entry.id} share the repo ${entry.repo}; list each repo once`,
      );
    repos.set(entry.repo.toLowerCase(), entry.id);
  }
  return models;
}
