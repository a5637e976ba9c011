// The checks a Hub repo passes before an account adds it to its catalogue by repo id (models.add; README "Add a
// model by its repo id"): the Hub shows it to this server's token, config.json names an architecture transformers.js
// runs for text generation with one decoder session, the tokenizer files are there, `onnx/` has a graph of a dtype a
// backend runs, and the model card names a license. Each refusal names the check that failed.
import { createHash } from 'node:crypto';
import type { Dtype, DtypeSize, ModelAddCheck } from '../../shared/schemas/models.ts';
import { DownloadError } from './download-types.ts';
import type { HubClient } from './hub-client.ts';
import { type ModelConfig, ModelConfigSchema, availableDtypes, transformersFiles } from './transformers-files.ts';

/**
 * config.json `model_type`s that transformers.js 4 loads with AutoModelForCausalLM as a decoder with the one `model`
 * session the engine runs: the text-only entries of MODEL_FOR_CAUSAL_LM_MAPPING_NAMES in its
 * src/models/registry.js (vision, audio and multi-session models left out). hub-check.test.ts holds this list
 * against that file.
 */
export const TEXT_GENERATION_MODEL_TYPES: ReadonlySet<string> = new Set([
  'apertus',
  'arcee',
  'bloom',
  'codegen',
  'cohere',
  'cohere2',
  'ernie4_5',
  'exaone',
  'falcon',
  'gemma',
  'gemma2',
  'gemma3_text',
  'glm',
  'gpt2',
  'gpt_bigcode',
  'gpt_neo',
  'gpt_neox',
  'gptj',
  'granite',
  'helium',
  'llama',
  'mistral',
  'mobilellm',
  'mpt',
  'olmo',
  'olmo2',
  'openelm',
  'opt',
  'phi',
  'phi3',
  'qwen2',
  'qwen3',
  'smollm3',
  'stablelm',
  'starcoder2',
]);

/** The dtypes WebGPU runs well, best first (f16 weights where the adapter has shader-f16). */
const WEBGPU_PREFERENCE: Dtype[] = ['q4f16', 'q4', 'fp16', 'fp32'];
/**
 * The dtypes WASM runs, best first. transformers.js 4 refuses no dtype on WASM (models/session.js refuses only fp16
 * on a WebGPU adapter without shader-f16; utils/dtypes.js maps every dtype to a file), so what WASM may take is what
 * ONNX Runtime's WASM build runs: 4- and 8-bit integer weights with float32 arithmetic first, then q4f16 (its float16
 * MatMulNBits runs on the CPU, a quarter of fp32's bytes: docs/CATALOGUE.md), then fp32, then fp16 (half of fp32's
 * bytes, but no float16 arithmetic in WebAssembly). bnb4 is left out: nothing here has run it.
 * hub-check.test.ts holds these against transformers.js' own sources.
 */
export const WASM_PREFERENCE: readonly Dtype[] = ['q4', 'q8', 'int8', 'uint8', 'q4f16', 'fp32', 'fp16'];
/** A longer context than this is not one a browser tab holds; the catalogue caps it too. */
const MAX_CONTEXT = 1_048_576;
const DEFAULT_CONTEXT = 2048;

export class ModelCheckError extends Error {
  override name = 'ModelCheckError';
  constructor(
    readonly check: ModelAddCheck,
    message: string,
  ) {
    super(message);
  }
}

export interface CheckedModel {
  repo: string;
  revision: string;
  commit: string;
  license: string;
  modelType: string;
  dtype: { webgpu: Dtype; wasm: Dtype };
  contextLength: number;
  /** Bytes a device fetches per dtype the repo has (graph, external data, config and tokenizer). */
  sizes: DtypeSize[];
}

/** The catalogue id of a repo at a revision: readable, the same for everyone who adds it (so one download serves all). */
export function addedModelId(repo: string, revision: string): string {
  const slug = repo
    .toLowerCase()
    .replace('/', '--')
    .replace(/[^a-z0-9._-]/g, '-')
    .replace(/^[^a-z0-9]+/, '');
  const hash = createHash('sha256').update(`${repo.toLowerCase()}@${revision}`).digest('hex').slice(0, 8);
  const short = slug.length > 80 ? `${slug.slice(0, 70)}-${hash}` : slug;
  return revision === 'main' ? short : `${short}-${hash}`;
}

/** Which of the repo's dtypes each backend runs, or null when a backend has none it runs. */
export function chooseDtypes(has: Dtype[]): { webgpu: Dtype; wasm: Dtype } | null {
  const wasm = WASM_PREFERENCE.find((d) => has.includes(d));
  if (!wasm) return null;
  // Every device can fall back to WASM; a WebGPU one without a dtype of its own runs the WASM one.
  return { webgpu: WEBGPU_PREFERENCE.find((d) => has.includes(d)) ?? wasm, wasm };
}

function contextLength(config: ModelConfig): number {
  const fields = config as Record<string, unknown>;
  const value = [fields.max_position_embeddings, fields.n_positions, fields.seq_length].find(
    (v) => typeof v === 'number' && Number.isInteger(v) && v > 0,
  );
  return Math.min(typeof value === 'number' ? value : DEFAULT_CONTEXT, MAX_CONTEXT);
}

/** A Hub refusal as the check it fails: not there, not granted, rate-limited. */
function asCheck(error: unknown): unknown {
  if (!(error instanceof DownloadError)) return error;
  if (error.code === 'GATED') return new ModelCheckError('access', error.message);
  if (error.code === 'NOT_FOUND') return new ModelCheckError('repo', error.message);
  if (error.code === 'RATE_LIMITED') return new ModelCheckError('rate', error.message);
  return new ModelCheckError('hub', `The Hub could not be asked about this repo: ${error.message}`);
}

/** Runs every check on `repo` at `revision` through the Hub's API; throws ModelCheckError naming the one that failed. */
export async function checkHubModel(
  hub: HubClient,
  repo: string,
  revision: string,
  signal: AbortSignal,
): Promise<CheckedModel> {
  try {
    return await runChecks(hub, repo, revision, signal);
  } catch (error) {
    throw asCheck(error);
  }
}

async function runChecks(hub: HubClient, repo: string, revision: string, signal: AbortSignal): Promise<CheckedModel> {
  const info = await hub.info(repo, revision, signal);
  const tree = await hub.tree(repo, info.commit, signal);
  const paths = new Set(tree.filter((t) => t.type === 'file').map((t) => t.path));
  const configFile = tree.find((t) => t.type === 'file' && t.path === 'config.json');
  if (!configFile)
    throw new ModelCheckError('architecture', `${repo} has no config.json: it is not a transformers model`);
  const parsed = ModelConfigSchema.safeParse(await hub.repoJson(repo, info.commit, configFile, signal));
  if (!parsed.success)
    throw new ModelCheckError('architecture', `config.json of ${repo} is not one transformers.js can read`);
  const config = parsed.data;
  const modelType = config.model_type ?? '';
  if (!TEXT_GENERATION_MODEL_TYPES.has(modelType)) {
    throw new ModelCheckError(
      'architecture',
      `${repo} is a ${modelType || 'model with no model_type'}: not an architecture this app runs for text generation (it runs ${[...TEXT_GENERATION_MODEL_TYPES].slice(0, 8).join(', ')}, ...)`,
    );
  }
  if (!paths.has('tokenizer.json') || !paths.has('tokenizer_config.json')) {
    throw new ModelCheckError(
      'tokenizer',
      `${repo} has no tokenizer.json and tokenizer_config.json for transformers.js`,
    );
  }
  const has = availableDtypes(paths);
  const sizes: DtypeSize[] = [];
  const sizeOf = new Map(tree.map((t) => [t.path, t.lfs?.size ?? t.size]));
  for (const dtype of has) {
    try {
      const files = transformersFiles({
        config,
        tree: paths,
        targets: [
          { device: 'webgpu', dtype },
          { device: 'wasm', dtype },
        ],
      });
      sizes.push({ dtype, bytes: files.reduce((sum, f) => sum + (sizeOf.get(f) ?? 0), 0) });
    } catch {
      // A graph whose external data is missing: not a dtype the repo really has.
    }
  }
  const dtype = chooseDtypes(sizes.map((s) => s.dtype));
  if (!dtype) {
    const what = has.length
      ? `its onnx/ folder has ${has.join(', ')}, none a WASM device runs`
      : 'it has no onnx/ folder with a model*.onnx graph';
    throw new ModelCheckError(
      'onnx',
      `${repo} has no ONNX weights this app can run: ${what} (${WASM_PREFERENCE.join(', ')} wanted)`,
    );
  }
  if (!info.license) {
    throw new ModelCheckError(
      'license',
      `The model card of ${repo} names no license (a "license:" line in its README front matter)`,
    );
  }
  return {
    repo,
    revision,
    commit: info.commit,
    license: info.license,
    modelType,
    dtype,
    contextLength: contextLength(config),
    sizes,
  };
}
