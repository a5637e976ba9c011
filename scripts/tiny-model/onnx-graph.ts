// The tiny decoder as an ONNX graph (opset 17), in the layout transformers.js loads for a Llama model:
// inputs input_ids, attention_mask, position_ids and past_key_values.{i}.key/value; outputs logits and
// present.{i}.key/value. transformers.js feeds only the new tokens after the first step, so the KV cache is
// not optional: without it the model would see one token at a time.
// `GraphOptions.weights` writes the weights as real exports' other dtypes do (export-shapes.ts); the default is
// the float32 graph every other model here uses.
import onnxProto, { type onnx } from 'onnx-proto';
import { Q4_BLOCK, quantizeQ4, quantizeQ8, toHalf } from './quantize.ts';
import { type TinyWeights, kvWidth, ropeTables } from './weights.ts';

// onnx-proto is CommonJS: its namespace arrives on the default export.
const proto = onnxProto.onnx;
const { DataType } = proto.TensorProto;
const { AttributeType } = proto.AttributeProto;

type Attribute = { name: string; type: onnx.AttributeProto.AttributeType; i?: number; ints?: number[]; f?: number };
const int = (name: string, i: number): Attribute => ({ name, type: AttributeType.INT, i });
const ints = (name: string, values: number[]): Attribute => ({ name, type: AttributeType.INTS, ints: values });

class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private count = 0;

  op(opType: string, inputs: string[], attributes: Attribute[] = [], output?: string, domain?: string): string {
    const name = output ?? `${opType.toLowerCase()}_${this.count++}`;
    this.nodes.push({ opType, input: inputs, output: [name], name: `${name}_node`, attribute: attributes, domain });
    return name;
  }

  /** A node with `count` outputs; returns their names. */
  outputs(opType: string, inputs: string[], count: number): string[] {
    const base = `${opType.toLowerCase()}_${this.count++}`;
    const names = Array.from({ length: count }, (_, i) => `${base}_${i}`);
    this.nodes.push({ opType, input: inputs, output: names, name: `${base}_node`, attribute: [] });
    return names;
  }

  tensor(name: string, dataType: number, data: ArrayBufferView, dims: number[]): string {
    this.initializers.push({
      name,
      dims,
      dataType,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  floats(name: string, data: Float32Array, dims: number[]): string {
    return this.tensor(name, DataType.FLOAT, data, dims);
  }

  int64s(name: string, values: number[]): string {
    const data = BigInt64Array.from(values.map(BigInt));
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: DataType.INT64,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  scalar(name: string, value: number): string {
    return this.floats(name, Float32Array.of(value), []);
  }
}

function dynamicInput(name: string, elemType: number, dims: string[]): onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((dimParam) => ({ dimParam })) } } } };
}

/**
 * How the weights are stored, as in real exports' files: `fp32` (model.onnx); `fp16` (model_fp16.onnx: every
 * weight float16, the KV cache and logits float16; the arithmetic between them stays float32 so the reference
 * forward pass can apply the same roundings); `q4` (model_q4.onnx: every projection and the LM head through
 * com.microsoft MatMulNBits, 4 bits in blocks of 32; embeddings and norms float32, the cache float32); `q4f16`
 * (model_q4f16.onnx: the projections through MatMulNBits in float16, its input, float16 scales and output; the
 * other weights float16, the KV cache and logits float16, as q4 files converted to float16 are).
 */
export type WeightFormat = 'fp32' | 'fp16' | 'q4' | 'q4f16';
/**
 * The formats a graph can be written in: those above, and `q8` (model_quantized.onnx, as onnxruntime's dynamic
 * quantisation writes transformers.js' q8 files: every projection and the LM head as DynamicQuantizeLinear on the
 * activations, MatMulInteger against int8 weights with one scale each, then the two scales; the rest float32). q8
 * quantises the activations at run time, so it has no float reference forward pass; the benchmarks use it for speed.
 */
export type GraphFormat = WeightFormat | 'q8';

/** Formats whose KV cache and logits are float16. */
export const HALF_FORMATS: readonly GraphFormat[] = ['fp16', 'q4f16'];
/** Formats whose projections go through com.microsoft MatMulNBits. */
const NBITS_FORMATS: readonly GraphFormat[] = ['q4', 'q4f16'];

export interface GraphOptions {
  weights?: GraphFormat;
}

/** Weight storage for one format: a float32 tensor name for `weight`, and `x @ W` for `linear`. */
function weightStore(g: GraphBuilder, format: GraphFormat) {
  const weight = (name: string, data: Float32Array, dims: number[]) => {
    if (!HALF_FORMATS.includes(format)) return g.floats(name, data, dims);
    const half = g.tensor(name, DataType.FLOAT16, toHalf(data), dims);
    return g.op('Cast', [half], [int('to', DataType.FLOAT)]);
  };
  const linear = (x: string, name: string, data: Float32Array, k: number, n: number, output?: string) => {
    if (format === 'q8') {
      const q = quantizeQ8(data);
      const quantized = g.tensor(`${name}.quantized`, DataType.INT8, q.values, [k, n]);
      const zero = g.tensor(`${name}.zero_point`, DataType.INT8, new Int8Array(1), []);
      const [xq, xScale, xZero] = g.outputs('DynamicQuantizeLinear', [x], 3) as [string, string, string];
      const product = g.op('Cast', [g.op('MatMulInteger', [xq, quantized, xZero, zero])], [int('to', DataType.FLOAT)]);
      return g.op('Mul', [product, g.op('Mul', [xScale, g.scalar(`${name}.scale`, q.scale)])], [], output);
    }
    if (!NBITS_FORMATS.includes(format)) return g.op('MatMul', [x, weight(name, data, [k, n])], [], output);
    const q = quantizeQ4(data, k, n);
    const packed = g.tensor(`${name}.qweight`, DataType.UINT8, q.packed, [n, q.blocks, Q4_BLOCK / 2]);
    const attributes = [int('K', k), int('N', n), int('bits', 4), int('block_size', Q4_BLOCK)];
    if (format === 'q4') {
      const scales = g.floats(`${name}.scales`, q.scales, [n * q.blocks]);
      return g.op('MatMulNBits', [x, packed, scales], attributes, output, 'com.microsoft');
    }
    // q4f16: MatMulNBits in float16 (its T), between casts from and back to the float32 the rest computes in.
    const scales = g.tensor(`${name}.scales`, DataType.FLOAT16, toHalf(q.scales), [n * q.blocks]);
    const half = g.op('Cast', [x], [int('to', DataType.FLOAT16)]);
    const product = g.op('MatMulNBits', [half, packed, scales], attributes, undefined, 'com.microsoft');
    return g.op('Cast', [product], [int('to', DataType.FLOAT)], output);
  };
  return { weight, linear };
}

export function buildGraph(weights: TinyWeights, options: GraphOptions = {}): Uint8Array {
  return encodeModel(buildModelProto(weights, options));
}

export function encodeModel(model: onnx.IModelProto): Uint8Array {
  return proto.ModelProto.encode(model).finish();
}

export function buildModelProto(weights: TinyWeights, options: GraphOptions = {}): onnx.IModelProto {
  const format = options.weights ?? 'fp32';
  const { hidden: d, heads, intermediate: f, vocab: v, maxPositions: p, rmsEps } = weights.config;
  const hd = d / heads;
  const kvHeads = weights.config.kvHeads ?? heads;
  const kv = kvWidth(weights.config);
  if (heads % kvHeads !== 0) throw new Error(`${heads} query heads cannot share ${kvHeads} key/value heads evenly`);
  const cacheType = HALF_FORMATS.includes(format) ? DataType.FLOAT16 : DataType.FLOAT;
  const g = new GraphBuilder();
  const { weight, linear } = weightStore(g, format);
  const eps = g.scalar('rms_eps', rmsEps);
  const one = g.scalar('one', 1);
  const negInf = g.scalar('mask_value', -1e9);
  const scale = g.scalar('attn_scale', 1 / Math.sqrt(hd));
  const headShape = g.int64s('head_shape', [0, 0, heads, hd]);
  const kvHeadShape = kvHeads === heads ? headShape : g.int64s('kv_head_shape', [0, 0, kvHeads, hd]);
  const mergedShape = g.int64s('merged_shape', [0, 0, d]);
  const rmsNorm = (x: string, weight: string) => {
    const meanSquare = g.op('ReduceMean', [g.op('Mul', [x, x])], [ints('axes', [-1]), int('keepdims', 1)]);
    return g.op('Mul', [g.op('Div', [x, g.op('Sqrt', [g.op('Add', [meanSquare, eps])])]), weight]);
  };

  // Causal mask for S new queries over T = past + S keys: rows T-S..T of a [P, P] constant (key > query is
  // masked), plus the padding mask from attention_mask [B, T].
  const causal = new Float32Array(p * p).map((_, i) => (i % p > Math.floor(i / p) ? -1e9 : 0));
  const newLen = g.op('Slice', [g.op('Shape', ['input_ids']), g.int64s('one_i', [1]), g.int64s('two_i', [2])]);
  const totalLen = g.op('Slice', [g.op('Shape', ['attention_mask']), g.int64s('one_j', [1]), g.int64s('two_j', [2])]);
  const pastLen = g.op('Sub', [totalLen, newLen]);
  const causalMask = g.op('Slice', [
    g.floats('causal_mask', causal, [p, p]),
    g.op('Concat', [pastLen, g.int64s('zero_i', [0])], [int('axis', 0)]),
    g.op('Concat', [totalLen, totalLen], [int('axis', 0)]),
    g.int64s('axes01', [0, 1]),
  ]);
  const keep = g.op('Cast', ['attention_mask'], [int('to', DataType.FLOAT)]);
  const padding = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [one, keep]), negInf]), g.int64s('axes12', [1, 2])]);
  const mask = g.op('Add', [causalMask, padding]);

  const { cos, sin } = ropeTables(weights.config);
  const axis1 = g.int64s('axis1', [1]);
  const cosPos = g.op('Unsqueeze', [g.op('Gather', [g.floats('rope_cos', cos, [p, hd]), 'position_ids']), axis1]);
  const sinPos = g.op('Unsqueeze', [g.op('Gather', [g.floats('rope_sin', sin, [p, hd]), 'position_ids']), axis1]);
  const halfStarts = [
    g.int64s('h0', [0]),
    g.int64s('h1', [hd / 2]),
    g.int64s('h2', [hd]),
    g.int64s('axis3', [3]),
  ] as const;
  const rope = (x: string) => {
    const [h0, h1, h2, axis3] = halfStarts;
    const first = g.op('Slice', [x, h0, h1, axis3]);
    const second = g.op('Slice', [x, h1, h2, axis3]);
    const rotated = g.op('Concat', [g.op('Neg', [second]), first], [int('axis', 3)]);
    return g.op('Add', [g.op('Mul', [x, cosPos]), g.op('Mul', [rotated, sinPos])]);
  };
  const splitHeads = (x: string, shape = headShape) =>
    g.op('Transpose', [g.op('Reshape', [x, shape])], [ints('perm', [0, 2, 1, 3])]);
  // Grouped-query attention as exports unroll repeat_kv: [B, kvH, T, hd] -> [B, kvH, rep, T, hd] -> [B, H, T, hd].
  const groups =
    kvHeads === heads
      ? null
      : {
          split: g.int64s('kv_group_shape', [0, 0, 1, -1, hd]),
          expand: g.int64s('kv_expand_shape', [1, 1, heads / kvHeads, 1, 1]),
          merge: g.int64s('kv_merge_shape', [0, heads, -1, hd]),
        };
  const repeatKv = (x: string) => {
    if (!groups) return x;
    const expanded = g.op('Expand', [g.op('Reshape', [x, groups.split]), groups.expand]);
    return g.op('Reshape', [expanded, groups.merge]);
  };
  // The cache holds keys and values in its own type (float16 for fp16 files); attention reads them as float32.
  const toCache = (x: string) => (cacheType === DataType.FLOAT ? x : g.op('Cast', [x], [int('to', cacheType)]));
  const fromCache = (x: string) => (cacheType === DataType.FLOAT ? x : g.op('Cast', [x], [int('to', DataType.FLOAT)]));

  let x = g.op('Gather', [weight('embed_tokens', weights.embed, [v, d]), 'input_ids']);
  weights.layers.forEach((layer, l) => {
    const w = (name: string, data: Float32Array, dims: number[]) => weight(`layers.${l}.${name}`, data, dims);
    const lin = (input: string, name: string, data: Float32Array, k: number, n: number) =>
      linear(input, `layers.${l}.${name}`, data, k, n);
    const n = rmsNorm(x, w('input_layernorm', layer.attnNorm, [d]));
    const q = rope(splitHeads(lin(n, 'q_proj', layer.wq, d, d)));
    const kNew = toCache(rope(splitHeads(lin(n, 'k_proj', layer.wk, d, kv), kvHeadShape)));
    const vNew = toCache(splitHeads(lin(n, 'v_proj', layer.wv, d, kv), kvHeadShape));
    const k = g.op('Concat', [`past_key_values.${l}.key`, kNew], [int('axis', 2)], `present.${l}.key`);
    const vv = g.op('Concat', [`past_key_values.${l}.value`, vNew], [int('axis', 2)], `present.${l}.value`);
    const keys = repeatKv(fromCache(k));
    const scores = g.op('Add', [
      g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [keys], [ints('perm', [0, 1, 3, 2])])]), scale]),
      mask,
    ]);
    const probs = g.op('Softmax', [scores], [int('axis', -1)]);
    const ctx = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [probs, repeatKv(fromCache(vv))])], [ints('perm', [0, 2, 1, 3])]),
      mergedShape,
    ]);
    x = g.op('Add', [x, lin(ctx, 'o_proj', layer.wo, d, d)]);
    const m = rmsNorm(x, w('post_attention_layernorm', layer.mlpNorm, [d]));
    const gate = lin(m, 'gate_proj', layer.wGate, d, f);
    const up = lin(m, 'up_proj', layer.wUp, d, f);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    x = g.op('Add', [x, lin(act, 'down_proj', layer.wDown, f, d)]);
  });
  const final = rmsNorm(x, weight('norm', weights.finalNorm, [d]));
  if (cacheType === DataType.FLOAT) linear(final, 'lm_head', weights.lmHead, d, v, 'logits');
  else g.op('Cast', [linear(final, 'lm_head', weights.lmHead, d, v)], [int('to', cacheType)], 'logits');

  const cacheNames = (prefix: string) =>
    weights.layers.flatMap((_, l) => [`${prefix}.${l}.key`, `${prefix}.${l}.value`]);
  const cacheValue = (name: string, length: string): onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: cacheType,
        shape: { dim: [{ dimParam: 'batch_size' }, { dimValue: kvHeads }, { dimParam: length }, { dimValue: hd }] },
      },
    },
  });
  return {
    irVersion: 8,
    producerName: 'mesh-nanollm tiny-model',
    opsetImport: [
      { domain: '', version: 17 },
      ...(NBITS_FORMATS.includes(format) ? [{ domain: 'com.microsoft', version: 1 }] : []),
    ],
    graph: {
      name: 'tiny_llama',
      node: g.nodes,
      initializer: g.initializers,
      input: [
        dynamicInput('input_ids', DataType.INT64, ['batch_size', 'sequence_length']),
        dynamicInput('attention_mask', DataType.INT64, ['batch_size', 'sequence_length']),
        dynamicInput('position_ids', DataType.INT64, ['batch_size', 'sequence_length']),
        ...cacheNames('past_key_values').map((name) => cacheValue(name, 'past_sequence_length')),
      ],
      output: [
        dynamicInput('logits', cacheType, ['batch_size', 'sequence_length', 'vocab_size']),
        ...cacheNames('present').map((name) => cacheValue(name, 'total_sequence_length')),
      ],
    },
  };
}
