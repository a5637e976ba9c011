// Tiny models shaped like real decoder exports (SmolLM2, Qwen2.5, Llama 3.2 as Optimum exports them for
// transformers.js), where they differ from the plain generated model in ways transformers.js cares about:
// grouped-query attention (fewer key/value heads, so a smaller KV cache), weights in external data files (one
// `model.onnx_data`, or chunks `_data`, `_data_1`), fp16 and q4 (MatMulNBits) files named by dtype,
// `transformers.js_config` in config.json, a list of EOS ids, and a chat template with a system turn.
// Every graph also has the `position_ids` input real exports have (onnx-graph.ts).
//   npm run model:export-shapes -- --out DIR [--variant NAME]...
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { withExternalData } from './external-data.ts';
import { type GenerateOptions, letterPairs, tinyConfig } from './generate.ts';
import { HALF_FORMATS, type WeightFormat, buildModelProto, encodeModel } from './onnx-graph.ts';
import { Q4_BLOCK, dequantizeQ4, quantizeQ4, roundHalf } from './quantize.ts';
import type { ReferenceOptions } from './reference.ts';
import { type TokenizerFiles, buildTokenizer } from './tokenizer.ts';
import { type TinyWeights, kvWidth, randomWeights } from './weights.ts';
import { modelConfig } from './write-model.ts';

export interface ExportShape {
  /** Sizes and seed, as for generate.ts; `kvHeads` below `heads` makes grouped-query attention. */
  model: GenerateOptions & { kvHeads: number };
  /** The dtype of the one graph written (`onnx/model.onnx`, `model_fp16.onnx`, `model_q4.onnx` or `model_q4f16.onnx`). */
  dtype: WeightFormat;
  /**
   * External data: `chunks` files, announced in config.json's `use_external_data_format` as transformers.js reads
   * it, for every file (`all`) or by file name (`per-file`); `true` for one chunk, the count for more. Absent: the
   * weights stay in the graph.
   */
  externalData?: { chunks: number; announce: 'all' | 'per-file' };
}

/** The variants the tests and benchmarks use; each is a few hundred KB and takes well under a second to make. */
export const EXPORT_SHAPES = {
  // Llama 3.2's shape: 4 query heads share 2 key/value heads; one external data file, announced per file.
  'gqa-external': {
    model: { layers: 2, hidden: 64, heads: 4, kvHeads: 2, seed: 21, vocab: 300 },
    dtype: 'fp32',
    externalData: { chunks: 1, announce: 'per-file' },
  },
  // Weights split in two chunks (`model.onnx_data`, `model.onnx_data_1`), the count given for the file.
  'gqa-chunked': {
    model: { layers: 2, hidden: 64, heads: 8, kvHeads: 2, seed: 22, vocab: 320 },
    dtype: 'fp32',
    externalData: { chunks: 2, announce: 'per-file' },
  },
  // model_fp16.onnx with its data in model_fp16.onnx_data, for every file (`true`), float16 cache and logits.
  fp16: {
    model: { layers: 2, hidden: 64, heads: 4, kvHeads: 2, seed: 23, vocab: 300 },
    dtype: 'fp16',
    externalData: { chunks: 1, announce: 'all' },
  },
  // model_q4.onnx: MatMulNBits, one key/value head for all four query heads (multi-query attention).
  q4: {
    model: { layers: 2, hidden: 64, heads: 4, kvHeads: 1, seed: 24, vocab: 300 },
    dtype: 'q4',
  },
  // model_q4f16.onnx, what WebGPU devices with shader-f16 fetch of SmolLM2, Qwen2.5 and Llama 3.2: MatMulNBits in
  // float16 with float16 scales, other weights float16, a float16 cache and logits (docs/CATALOGUE.md).
  q4f16: {
    model: { layers: 2, hidden: 64, heads: 4, kvHeads: 2, seed: 25, vocab: 300 },
    dtype: 'q4f16',
  },
} satisfies Record<string, ExportShape>;
export type ExportShapeName = keyof typeof EXPORT_SHAPES;

/** The file suffix transformers.js gives each dtype (utils/dtypes.js DEFAULT_DTYPE_SUFFIX_MAPPING). */
const SUFFIX: Record<WeightFormat, string> = { fp32: '', fp16: '_fp16', q4: '_q4', q4f16: '_q4f16' };

/** A chat template with a system turn, and a default one when the conversation has none (as Qwen2.5's). */
export const SYSTEM_CHAT_TEMPLATE =
  '{% for message in messages %}' +
  "{% if loop.first and message['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  '{% endfor %}' +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * `source` with its projections and LM head through `q4` (each a k-by-n matrix), the rest as `base` holds it: the
 * MatMulNBits weights of the q4 and q4f16 exports.
 */
function withQuantizedProjections(
  base: TinyWeights,
  source: TinyWeights,
  q4: (w: Float32Array, k: number, n: number) => Float32Array,
): TinyWeights {
  const { hidden: d, intermediate: f, vocab: v } = source.config;
  const kv = kvWidth(source.config);
  return {
    ...base,
    layers: source.layers.map((layer, l) => ({
      ...(base.layers[l] ?? layer),
      wq: q4(layer.wq, d, d),
      wk: q4(layer.wk, d, kv),
      wv: q4(layer.wv, d, kv),
      wo: q4(layer.wo, d, d),
      wGate: q4(layer.wGate, d, f),
      wUp: q4(layer.wUp, d, f),
      wDown: q4(layer.wDown, f, d),
    })),
    lmHead: q4(source.lmHead, d, v),
  };
}

/**
 * The weights the graph computes with: float16-rounded for fp16, dequantised projections for q4, and for q4f16
 * projections dequantised with float16 scales, the rest float16-rounded.
 */
export function storedWeights(weights: TinyWeights, dtype: WeightFormat): TinyWeights {
  if (dtype === 'fp32') return weights;
  if (dtype === 'q4f16') {
    return withQuantizedProjections(storedWeights(weights, 'fp16'), weights, (w, k, n) => {
      const q = quantizeQ4(w, k, n, Q4_BLOCK);
      return dequantizeQ4({ ...q, scales: roundHalf(q.scales) }, k, n, Q4_BLOCK);
    });
  }
  if (dtype === 'fp16') {
    return {
      config: weights.config,
      embed: roundHalf(weights.embed),
      layers: weights.layers.map((layer) => ({
        attnNorm: roundHalf(layer.attnNorm),
        wq: roundHalf(layer.wq),
        wk: roundHalf(layer.wk),
        wv: roundHalf(layer.wv),
        wo: roundHalf(layer.wo),
        mlpNorm: roundHalf(layer.mlpNorm),
        wGate: roundHalf(layer.wGate),
        wUp: roundHalf(layer.wUp),
        wDown: roundHalf(layer.wDown),
      })),
      finalNorm: roundHalf(weights.finalNorm),
      lmHead: roundHalf(weights.lmHead),
    };
  }
  return withQuantizedProjections(weights, weights, (w, k, n) =>
    dequantizeQ4(quantizeQ4(w, k, n, Q4_BLOCK), k, n, Q4_BLOCK),
  );
}

/** With storedWeights, what the reference forward pass needs to give the graph's tokens. */
export function referenceOptions(dtype: WeightFormat): ReferenceOptions {
  return { half: HALF_FORMATS.includes(dtype), halfLinear: dtype === 'q4f16' };
}

export interface ExportModel {
  shape: ExportShape;
  /** The weights the graph computes with (see storedWeights). */
  weights: TinyWeights;
  tokenizer: TokenizerFiles;
  /** The EOS ids config.json and generation_config.json list. */
  eosIds: number[];
  /** Every file written, relative to the model's folder. */
  files: string[];
}

/** Writes the model of `shape` into `dir` in the layout of a real export's repo. */
export async function writeExportModel(dir: string, shape: ExportShape): Promise<ExportModel> {
  const maxPositions = shape.model.maxPositions ?? 512;
  const merges = letterPairs(shape.model.vocab ?? 259);
  const tokenizer = buildTokenizer(
    merges,
    merges.map(([a, b]) => a + b),
    maxPositions,
  );
  tokenizer.tokenizerConfig = { ...tokenizer.tokenizerConfig, chat_template: SYSTEM_CHAT_TEMPLATE };
  const weights = randomWeights({ ...tinyConfig(shape.model, tokenizer.vocabSize), kvHeads: shape.model.kvHeads });
  const eosIds = [tokenizer.specialIds['<|im_end|>'], tokenizer.specialIds['<|endoftext|>']];
  const graphName = `model${SUFFIX[shape.dtype]}.onnx`;
  const proto = buildModelProto(weights, { weights: shape.dtype });
  const { graph, files: data } = shape.externalData
    ? withExternalData(proto, graphName, shape.externalData.chunks)
    : { graph: encodeModel(proto), files: [] };
  if (data.some((file) => file.bytes.byteLength === 0)) throw new Error(`${dir}: an external data chunk is empty`);

  const external = shape.externalData;
  // One file is `true` (as onnx-community's Llama 3.2 config says `"model.onnx": true`), more are a count.
  const chunks = external && external.chunks > 1 ? external.chunks : true;
  const announce = !external
    ? {}
    : { use_external_data_format: external.announce === 'all' ? chunks : { [graphName]: chunks } };
  const config = {
    ...modelConfig(weights, tokenizer),
    eos_token_id: eosIds,
    torch_dtype: HALF_FORMATS.includes(shape.dtype) ? 'float16' : 'float32',
    // As SmolLM2's and Qwen2.5's configs say it: the float16 files keep a float16 cache.
    'transformers.js_config': { kv_cache_dtype: { q4f16: 'float16', fp16: 'float16' }, ...announce },
  };
  const pad = tokenizer.specialIds['<|endoftext|>'];
  const written: [string, Uint8Array | string][] = [
    ['config.json', json(config)],
    ['generation_config.json', json({ bos_token_id: pad, eos_token_id: eosIds, pad_token_id: pad, do_sample: false })],
    ['tokenizer.json', json(tokenizer.tokenizer)],
    ['tokenizer_config.json', json(tokenizer.tokenizerConfig)],
    [`onnx/${graphName}`, graph],
    ...data.map((file) => [`onnx/${file.name}`, file.bytes] as [string, Uint8Array]),
  ];
  await mkdir(path.join(dir, 'onnx'), { recursive: true });
  for (const [name, content] of written) await writeFile(path.join(dir, name), content);
  return {
    shape,
    weights: storedWeights(weights, shape.dtype),
    tokenizer,
    eosIds,
    files: written.map(([name]) => name),
  };
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, variant: { type: 'string', multiple: true } } });
  if (!values.out) {
    console.error(
      `Usage: npx tsx scripts/tiny-model/export-shapes.ts --out DIR [--variant ${Object.keys(EXPORT_SHAPES).join('|')}]...`,
    );
    process.exit(2);
  }
  const names = (values.variant ?? Object.keys(EXPORT_SHAPES)) as ExportShapeName[];
  for (const name of names) {
    const shape = EXPORT_SHAPES[name];
    if (!shape) throw new Error(`no variant ${name}: one of ${Object.keys(EXPORT_SHAPES).join(', ')}`);
    const started = performance.now();
    const { files } = await writeExportModel(path.join(values.out, name), shape);
    console.log(
      `wrote ${path.join(values.out, name)} (${files.length} files) in ${Math.round(performance.now() - started)} ms`,
    );
  }
}
