// The tiny decoder as an ONNX graph (opset 17), in the layout transformers.js loads for a Llama model:
// inputs input_ids, attention_mask, position_ids and past_key_values.{i}.key/value; outputs logits and
// present.{i}.key/value. transformers.js feeds only the new tokens after the first step, so the KV cache is
// not optional: without it the model would see one token at a time.
import onnxProto, { type onnx } from 'onnx-proto';
import { type TinyWeights, ropeTables } from './weights.ts';

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

  op(opType: string, inputs: string[], attributes: Attribute[] = [], output?: string): string {
    const name = output ?? `${opType.toLowerCase()}_${this.count++}`;
    this.nodes.push({ opType, input: inputs, output: [name], name: `${name}_node`, attribute: attributes });
    return name;
  }

  floats(name: string, data: Float32Array, dims: number[]): string {
    this.initializers.push({
      name,
      dims,
      dataType: DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
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

export function buildGraph(weights: TinyWeights): Uint8Array {
  const { hidden: d, heads, intermediate: f, vocab: v, maxPositions: p, rmsEps } = weights.config;
  const hd = d / heads;
  const g = new GraphBuilder();
  const eps = g.scalar('rms_eps', rmsEps);
  const one = g.scalar('one', 1);
  const negInf = g.scalar('mask_value', -1e9);
  const scale = g.scalar('attn_scale', 1 / Math.sqrt(hd));
  const headShape = g.int64s('head_shape', [0, 0, heads, hd]);
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
  const splitHeads = (x: string) => g.op('Transpose', [g.op('Reshape', [x, headShape])], [ints('perm', [0, 2, 1, 3])]);

  let x = g.op('Gather', [g.floats('embed_tokens', weights.embed, [v, d]), 'input_ids']);
  weights.layers.forEach((layer, l) => {
    const w = (name: string, data: Float32Array, dims: number[]) => g.floats(`layers.${l}.${name}`, data, dims);
    const n = rmsNorm(x, w('input_layernorm', layer.attnNorm, [d]));
    const q = rope(splitHeads(g.op('MatMul', [n, w('q_proj', layer.wq, [d, d])])));
    const kNew = rope(splitHeads(g.op('MatMul', [n, w('k_proj', layer.wk, [d, d])])));
    const vNew = splitHeads(g.op('MatMul', [n, w('v_proj', layer.wv, [d, d])]));
    const k = g.op('Concat', [`past_key_values.${l}.key`, kNew], [int('axis', 2)], `present.${l}.key`);
    const vv = g.op('Concat', [`past_key_values.${l}.value`, vNew], [int('axis', 2)], `present.${l}.value`);
    const scores = g.op('Add', [
      g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], [ints('perm', [0, 1, 3, 2])])]), scale]),
      mask,
    ]);
    const probs = g.op('Softmax', [scores], [int('axis', -1)]);
    const ctx = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [probs, vv])], [ints('perm', [0, 2, 1, 3])]),
      mergedShape,
    ]);
    x = g.op('Add', [x, g.op('MatMul', [ctx, w('o_proj', layer.wo, [d, d])])]);
    const m = rmsNorm(x, w('post_attention_layernorm', layer.mlpNorm, [d]));
    const gate = g.op('MatMul', [m, w('gate_proj', layer.wGate, [d, f])]);
    const up = g.op('MatMul', [m, w('up_proj', layer.wUp, [d, f])]);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    x = g.op('Add', [x, g.op('MatMul', [act, w('down_proj', layer.wDown, [f, d])])]);
  });
  const final = rmsNorm(x, g.floats('norm', weights.finalNorm, [d]));
  g.op('MatMul', [final, g.floats('lm_head', weights.lmHead, [d, v])], [], 'logits');

  const cacheNames = (prefix: string) =>
    weights.layers.flatMap((_, l) => [`${prefix}.${l}.key`, `${prefix}.${l}.value`]);
  const cacheValue = (name: string, length: string): onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: DataType.FLOAT,
        shape: { dim: [{ dimParam: 'batch_size' }, { dimValue: heads }, { dimParam: length }, { dimValue: hd }] },
      },
    },
  });
  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: 'mesh-nanollm tiny-model',
    opsetImport: [{ domain: '', version: 17 }],
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
        dynamicInput('logits', DataType.FLOAT, ['batch_size', 'sequence_length', 'vocab_size']),
        ...cacheNames('present').map((name) => cacheValue(name, 'total_sequence_length')),
      ],
    },
  };
  return proto.ModelProto.encode(model).finish();
}
