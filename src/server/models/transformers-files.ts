// The files transformers.js 4 loads for a text-generation model on a device and dtype, derived as its own loader
// derives them (node_modules/@huggingface/transformers/src/models/session.js, utils/model-loader.js,
// utils/model_registry/get_model_files.js and get_tokenizer_files.js), so the server fetches exactly those:
//   config.json; onnx/model{suffix}.onnx where the suffix comes from the dtype (q8 -> `_quantized`, fp32 -> none);
//   its external data `model{suffix}.onnx_data`, `_data_1`, ... when `transformers.js_config.use_external_data_format`
//   (after the device's `device_config` overlay) says so, per file or for all; generation_config.json when the repo
//   has one (transformers.js asks for it and carries on without it); tokenizer.json and tokenizer_config.json when
//   the repo has tokenizer_config.json (AutoTokenizer checks for that one first).
import { z } from 'zod';
import type { Dtype } from '../../shared/schemas/models.ts';
import { DownloadError } from './download-types.ts';

export type Device = 'webgpu' | 'wasm';

/** transformers.js' DEFAULT_DTYPE_SUFFIX_MAPPING (utils/dtypes.js), for the dtypes the catalogue knows. */
export const DTYPE_SUFFIX: Record<Dtype, string> = {
  fp32: '',
  fp16: '_fp16',
  int8: '_int8',
  uint8: '_uint8',
  q8: '_quantized',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
};
/** transformers.js refuses more chunks than this (utils/hub/constants.js MAX_EXTERNAL_DATA_CHUNKS). */
export const MAX_EXTERNAL_DATA_CHUNKS = 100;
/** The one session of a decoder-only model (models/session_config.js, MODEL_TYPES.DecoderOnly). */
const SESSION = 'model';
const SUBFOLDER = 'onnx';

const ExternalDataSchema = z.union([z.boolean(), z.number().int().nonnegative()]);
const ExternalDataFormatSchema = z.union([ExternalDataSchema, z.record(z.string(), ExternalDataSchema)]).nullish();
const TransformersJsConfigSchema = z
  .object({
    use_external_data_format: ExternalDataFormatSchema,
    kv_cache_dtype: z.union([z.string(), z.record(z.string(), z.string())]).nullish(),
    device_config: z
      .record(z.string(), z.object({ use_external_data_format: ExternalDataFormatSchema }).loose())
      .nullish(),
  })
  .loose();
/** The parts of a model's config.json that decide its files (the rest passes through unread). */
export const ModelConfigSchema = z
  .object({
    model_type: z.string().max(64).optional(),
    architectures: z.array(z.string().max(128)).max(16).optional(),
    'transformers.js_config': TransformersJsConfigSchema.optional(),
  })
  .loose();
export type ModelConfig = z.infer<typeof ModelConfigSchema>;

/** utils/model-loader.js resolveExternalDataFormat: a per-file map (by full then base name), or one value for all. */
export function externalDataChunks(
  format: z.infer<typeof ExternalDataFormatSchema>,
  fullName: string,
  fileName: string,
) {
  if (!format) return 0;
  if (typeof format === 'object') {
    if (Object.hasOwn(format, fullName)) return Number(format[fullName]);
    if (Object.hasOwn(format, fileName)) return Number(format[fileName]);
    return 0;
  }
  return Number(format);
}

/** utils/model-loader.js getExternalDataChunkNames: `x.onnx_data`, `x.onnx_data_1`, ... */
export function externalDataNames(fullName: string, chunks: number): string[] {
  return Array.from({ length: chunks }, (_, i) => `${fullName}_data${i === 0 ? '' : `_${i}`}`);
}

/** The weight files (graph, then its external data) of `dtype` on `device`. */
export function weightFiles(config: ModelConfig, device: Device, dtype: Dtype): string[] {
  const custom = config['transformers.js_config'] ?? {};
  // session.js overlays the selected device's settings on the model's.
  const overlay = custom.device_config?.[device] ?? {};
  const format =
    'use_external_data_format' in overlay ? overlay.use_external_data_format : custom.use_external_data_format;
  const fullName = `${SESSION}${DTYPE_SUFFIX[dtype]}.onnx`;
  const chunks = externalDataChunks(format, fullName, SESSION);
  if (!Number.isInteger(chunks) || chunks < 0 || chunks > MAX_EXTERNAL_DATA_CHUNKS) {
    throw new DownloadError(
      'HUB_ERROR',
      `config.json asks for ${String(chunks)} external data chunks for ${fullName}; transformers.js allows 0 to ${MAX_EXTERNAL_DATA_CHUNKS}`,
    );
  }
  return [fullName, ...externalDataNames(fullName, chunks)].map((name) => `${SUBFOLDER}/${name}`);
}

export interface FileChoice {
  config: ModelConfig;
  /** Every file path of the repo at the pinned commit. */
  tree: ReadonlySet<string>;
  /** The device and dtype pairs to fetch for (one per backend a device may use). */
  targets: { device: Device; dtype: Dtype }[];
}

/** The dtypes whose graph the repo has, for a clear refusal. */
export function availableDtypes(tree: ReadonlySet<string>): Dtype[] {
  return (Object.keys(DTYPE_SUFFIX) as Dtype[]).filter((dtype) =>
    tree.has(`${SUBFOLDER}/${SESSION}${DTYPE_SUFFIX[dtype]}.onnx`),
  );
}

/**
 * The files transformers.js will request for these targets, in a stable order; refuses (NOT_FOUND) when the repo
 * lacks one it needs, naming the dtypes it does have.
 */
export function transformersFiles({ config, tree, targets }: FileChoice): string[] {
  const files = new Set<string>(['config.json']);
  if (tree.has('generation_config.json')) files.add('generation_config.json');
  if (tree.has('tokenizer_config.json')) {
    files.add('tokenizer.json');
    files.add('tokenizer_config.json');
  }
  for (const { device, dtype } of targets) {
    for (const file of weightFiles(config, device, dtype)) files.add(file);
  }
  for (const file of files) {
    if (tree.has(file)) continue;
    const has = availableDtypes(tree);
    const dtypes = has.length ? `it has ${has.join(', ')}` : 'it has no onnx/model*.onnx graph';
    throw new DownloadError('NOT_FOUND', `The repo has no ${file} (${dtypes})`);
  }
  return [...files];
}
