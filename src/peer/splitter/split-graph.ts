// Cuts a decoder's whole-model ONNX graph at the residual stream between layers into stage graphs, each with
// only the nodes and initializers (weights) it needs (docs/pipeline.md). Stage 0 keeps `input_ids` and the
// embeddings; a later stage takes the residual stream as the input `hidden_states`; every stage but the last
// returns it as `hidden_states_out`; the last keeps the final norm and the LM head (`logits`). Each stage keeps
// the KV cache inputs and outputs (`past_key_values.N.*`, `present.N.*`) of its own layers, and the shared
// inputs its nodes read (`attention_mask`, `position_ids`).
import type { onnx } from 'onnx-proto';
import { HIDDEN_INPUT, HIDDEN_OUTPUT } from '../../shared/pipeline/stage-session.ts';
import { proto } from './onnx-file.ts';

export { HIDDEN_INPUT, HIDDEN_OUTPUT };

export interface StageGraph {
  index: number;
  /** Layers [start, end) this stage computes. */
  layers: [number, number];
  model: onnx.IModelProto;
}

export interface SplitOptions {
  /** Layer indexes where a new stage begins, ascending, each in 1..layers-1: `[2]` cuts 4 layers into 2 + 2. */
  boundaries: readonly number[];
  /** The residual-stream tensor entering layer N, where the search (residualCut, below) would not find it. */
  cuts?: Readonly<Record<number, string>>;
}

const LAYER = /(?:^|[./_])layers?[._](\d+)[./_]/;
const CACHE = /^(?:past_key_values|present)\.(\d+)\./;

function layerOf(name: string): number | null {
  const match = LAYER.exec(name);
  return match ? Number(match[1]) : null;
}

/** How many decoder layers the graph has, from its initializers' names (`layers.N.` or `model.layers.N.`). */
export function countLayers(graph: onnx.IGraphProto): number {
  let max = -1;
  for (const tensor of graph.initializer ?? []) max = Math.max(max, layerOf(tensor.name ?? '') ?? -1);
  return max + 1;
}

/** Boundaries that give each of `stages` stages an equal share of `layers` (the earlier stages one more). */
export function evenBoundaries(layers: number, stages: number): number[] {
  if (!Number.isInteger(stages) || stages < 1 || stages > layers)
    throw new Error(`${stages} stages cannot share ${layers} layers`);
  const boundaries: number[] = [];
  let at = 0;
  for (let s = 0; s < stages - 1; s++) {
    at += Math.ceil((layers - at) / (stages - s));
    boundaries.push(at);
  }
  return boundaries;
}

class GraphIndex {
  readonly producer = new Map<string, onnx.INodeProto>();
  readonly consumers = new Map<string, onnx.INodeProto[]>();
  readonly initializers = new Set<string>();
  readonly inputs = new Set<string>();

  constructor(readonly graph: onnx.IGraphProto) {
    for (const node of graph.node ?? []) {
      if (node.attribute?.some((a) => a.g || (a.graphs?.length ?? 0) > 0))
        throw new Error(`node ${node.name} (${node.opType}) has a subgraph: graphs with control flow are not split`);
      for (const output of node.output ?? []) this.producer.set(output, node);
      for (const input of node.input ?? []) {
        if (!input) continue;
        const list = this.consumers.get(input) ?? [];
        list.push(node);
        this.consumers.set(input, list);
      }
    }
    for (const tensor of graph.initializer ?? []) this.initializers.add(tensor.name ?? '');
    for (const input of graph.input ?? [])
      if (!this.initializers.has(input.name ?? '')) this.inputs.add(input.name ?? '');
  }
}

/**
 * The residual stream entering `layer`: the data input of the layer's first normalization that also feeds an Add
 * outside that normalization (the attention block's residual connection). Found by walking up from the node that
 * reads the layer's `input_layernorm` weight, nearest tensor first. Graphs whose residual Add is fused into the
 * normalization (ONNX Runtime's SkipSimplifiedLayerNormalization) have no such tensor: pass `cuts` for them.
 */
function residualCut(index: GraphIndex, layer: number): string {
  const weight = [...index.initializers].find((name) => layerOf(name) === layer && /input_layernorm/.test(name));
  if (!weight) throw new Error(`no input_layernorm weight for layer ${layer}: name the cut in \`cuts\``);
  let normNode = index.consumers.get(weight)?.[0];
  // Float16 exports keep the weight in float16 and Cast it first: the normalization reads the Cast's output.
  while (normNode?.opType === 'Cast' && normNode.input?.length === 1)
    normNode = index.consumers.get(normNode.output?.[0] ?? '')?.[0];
  if (!normNode) throw new Error(`the input_layernorm weight of layer ${layer} is not used`);
  // The normalization's own nodes: everything within a few steps upstream of the weight's node.
  const near = new Set<onnx.INodeProto>([normNode]);
  const queue: [string, number][] = (normNode.input ?? []).map((name) => [name, 1]);
  const order: string[] = [];
  for (let i = 0; i < queue.length; i++) {
    const [name, depth] = queue[i]!;
    if (!name || index.initializers.has(name) || order.includes(name)) continue;
    order.push(name);
    const producer = index.producer.get(name);
    if (!producer || depth >= 8) continue;
    near.add(producer);
    for (const input of producer.input ?? []) queue.push([input, depth + 1]);
  }
  const cut = order.find((name) => (index.consumers.get(name) ?? []).some((n) => n.opType === 'Add' && !near.has(n)));
  if (!cut) throw new Error(`no residual stream found entering layer ${layer}: name the cut in \`cuts\``);
  return cut;
}

/** Where a `Shape(input_ids)` of a later stage reads from: `hidden_states` is [batch, sequence, hidden]. */
function shapeOfIds(node: onnx.INodeProto): onnx.INodeProto {
  const attr = (name: string) => node.attribute?.find((a) => a.name === name);
  const norm = (value: number) => Math.min(2, Math.max(0, value < 0 ? value + 2 : value));
  const start = norm(Number(attr('start')?.i ?? 0));
  const end = norm(attr('end') ? Number(attr('end')?.i) : 2);
  const { INT } = proto.AttributeProto.AttributeType;
  return {
    ...node,
    input: [HIDDEN_INPUT],
    attribute: [
      { name: 'start', type: INT, i: start },
      { name: 'end', type: INT, i: end },
    ],
  };
}

function hiddenValue(name: string): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: proto.TensorProto.DataType.FLOAT,
        shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }, { dimParam: 'hidden_size' }] },
      },
    },
  };
}

/** Splits `model` (weights inline: see readOnnx) into stage graphs at `options.boundaries`. */
export function splitModel(model: onnx.IModelProto, options: SplitOptions): StageGraph[] {
  const graph = model.graph;
  if (!graph) throw new Error('the model has no graph');
  const index = new GraphIndex(graph);
  const layers = countLayers(graph);
  const boundaries = [...options.boundaries];
  boundaries.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 1 || b >= layers || (i > 0 && b <= (boundaries[i - 1] ?? 0)))
      throw new Error(`boundaries must ascend within 1..${layers - 1} (got ${boundaries.join(', ')})`);
  });
  const cuts = new Map(boundaries.map((b) => [b, options.cuts?.[b] ?? residualCut(index, b)] as const));
  const starts = [0, ...boundaries];
  const ends = [...boundaries, layers];
  const order = new Map((graph.node ?? []).map((node, i) => [node, i] as const));

  return starts.map((start, s) => {
    const end = ends[s] ?? layers;
    const first = s === 0;
    const last = s === starts.length - 1;
    const cutIn = first ? null : (cuts.get(start) ?? null);
    const cutOut = last ? null : (cuts.get(end) ?? null);
    const wanted = (graph.output ?? []).filter((o) => {
      const name = o.name ?? '';
      const cache = CACHE.exec(name);
      if (cache) return Number(cache[1]) >= start && Number(cache[1]) < end;
      return last;
    });
    const targets = [...wanted.map((o) => o.name ?? ''), ...(cutOut ? [cutOut] : [])];

    const nodes = new Set<onnx.INodeProto>();
    const usedInputs = new Set<string>();
    const usedInitializers = new Set<string>();
    const visit = (name: string, via: onnx.INodeProto | null) => {
      if (!name) return;
      if (name === cutIn) return;
      if (index.initializers.has(name)) {
        const layer = layerOf(name);
        if (layer !== null && (layer < start || layer >= end))
          throw new Error(
            `stage ${s} (layers ${start}..${end - 1}) reaches ${name}: the cut is not the residual stream`,
          );
        usedInitializers.add(name);
        return;
      }
      if (index.inputs.has(name)) {
        if (!first && name === 'input_ids' && via?.opType !== 'Shape')
          throw new Error(`stage ${s} reads input_ids through ${via?.opType}: only the first stage may embed tokens`);
        usedInputs.add(name);
        return;
      }
      const node = index.producer.get(name);
      if (!node) throw new Error(`nothing produces ${name}`);
      if (nodes.has(node)) return;
      nodes.add(node);
      for (const input of node.input ?? []) visit(input, node);
    };
    for (const target of targets) visit(target, null);

    const rename = (name: string) => (name === cutIn ? HIDDEN_INPUT : name);
    const stageNodes = [...nodes]
      .sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0))
      .map((node) =>
        !first && node.opType === 'Shape' && node.input?.[0] === 'input_ids'
          ? shapeOfIds(node)
          : { ...node, input: (node.input ?? []).map(rename) },
      );
    if (cutOut) stageNodes.push({ opType: 'Identity', input: [cutOut], output: [HIDDEN_OUTPUT], name: 'stage_output' });
    // Inputs read only through Shape(input_ids) are now read from hidden_states.
    if (!first) usedInputs.delete('input_ids');
    const nodeTensors = new Set(stageNodes.flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]));
    const graphInputs = (graph.input ?? []).filter(
      (i) => usedInputs.has(i.name ?? '') || (CACHE.exec(i.name ?? '') && nodeTensors.has(i.name ?? '')),
    );
    return {
      index: s,
      layers: [start, end] as [number, number],
      model: {
        ...model,
        graph: {
          ...graph,
          name: `${graph.name ?? 'graph'}_stage_${s}`,
          node: stageNodes,
          initializer: (graph.initializer ?? []).filter((t) => usedInitializers.has(t.name ?? '')),
          input: [...(cutIn ? [hiddenValue(HIDDEN_INPUT)] : []), ...graphInputs],
          output: [...(cutOut ? [hiddenValue(HIDDEN_OUTPUT)] : []), ...wanted],
          valueInfo: (graph.valueInfo ?? []).filter((v) => nodeTensors.has(v.name ?? '') && v.name !== cutIn),
        },
      },
    };
  });
}
