// Reads a generated float32 model's weights back from its ONNX file (weights inside it) and config.json, for the
// reference forward pass.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import type { TinyConfig, TinyWeights } from './weights.ts';

export async function readWeights(dir: string): Promise<TinyWeights> {
  const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, number> & {
    tiny_model?: { seed: number };
  };
  const tiny: TinyConfig = {
    layers: config.num_hidden_layers ?? 0,
    hidden: config.hidden_size ?? 0,
    heads: config.num_attention_heads ?? 0,
    kvHeads: config.num_key_value_heads ?? config.num_attention_heads ?? 0,
    intermediate: config.intermediate_size ?? 0,
    vocab: config.vocab_size ?? 0,
    maxPositions: config.max_position_embeddings ?? 0,
    ropeTheta: config.rope_theta ?? 10000,
    rmsEps: config.rms_norm_eps ?? 1e-5,
    seed: config.tiny_model?.seed ?? 0,
  };
  const model = onnxProto.onnx.ModelProto.decode(await readFile(path.join(dir, 'onnx', 'model.onnx')));
  const tensors = new Map(
    (model.graph?.initializer ?? []).map((t) => {
      const raw = t.rawData ?? new Uint8Array();
      return [
        t.name ?? '',
        new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)),
      ] as const;
    }),
  );
  const get = (name: string) => {
    const tensor = tensors.get(name);
    if (!tensor) throw new Error(`${dir}: no initializer ${name}`);
    return tensor;
  };
  return {
    config: tiny,
    embed: get('embed_tokens'),
    layers: Array.from({ length: tiny.layers }, (_, l) => ({
      attnNorm: get(`layers.${l}.input_layernorm`),
      wq: get(`layers.${l}.q_proj`),
      wk: get(`layers.${l}.k_proj`),
      wv: get(`layers.${l}.v_proj`),
      wo: get(`layers.${l}.o_proj`),
      mlpNorm: get(`layers.${l}.post_attention_layernorm`),
      wGate: get(`layers.${l}.gate_proj`),
      wUp: get(`layers.${l}.up_proj`),
      wDown: get(`layers.${l}.down_proj`),
    })),
    finalNorm: get('norm'),
    lmHead: get('lm_head'),
  };
}
