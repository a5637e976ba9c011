// Writes a tiny model directory in the layout transformers.js loads: config.json, generation_config.json,
// tokenizer.json, tokenizer_config.json, onnx/model.onnx (or the q8 or q4 graph: onnx/model_quantized.onnx, ...).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildGraph } from './onnx-graph.ts';
import type { TokenizerFiles } from './tokenizer.ts';
import type { TinyWeights } from './weights.ts';

/** config.json of a tiny model (export-shapes.ts adds what real exports add). */
export function modelConfig(weights: TinyWeights, tokenizer: TokenizerFiles): Record<string, unknown> {
  const c = weights.config;
  const eos = tokenizer.specialIds['<|im_end|>'];
  const pad = tokenizer.specialIds['<|endoftext|>'];
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads ?? c.heads,
    num_hidden_layers: c.layers,
    head_dim: c.hidden / c.heads,
    vocab_size: c.vocab,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.rmsEps,
    rope_theta: c.ropeTheta,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    use_cache: true,
    bos_token_id: pad,
    eos_token_id: eos,
    pad_token_id: pad,
    torch_dtype: 'float32',
    tiny_model: { seed: c.seed, generator: 'mesh-nanollm scripts/tiny-model' },
  };
}

/**
 * The formats this layout holds (onnx-graph.ts): those with a float32 cache and logits, which need nothing more in
 * config.json (float16 ones are written by export-shapes.ts, with their `transformers.js_config`). Each with its
 * file name as transformers.js asks for its dtype (utils/dtypes.js DEFAULT_DTYPE_SUFFIX_MAPPING).
 */
export const GRAPH_FILE = {
  fp32: 'onnx/model.onnx',
  q8: 'onnx/model_quantized.onnx',
  q4: 'onnx/model_q4.onnx',
} as const;
export type PlainFormat = keyof typeof GRAPH_FILE;

export async function writeModel(
  dir: string,
  weights: TinyWeights,
  tokenizer: TokenizerFiles,
  format: PlainFormat = 'fp32',
): Promise<void> {
  const c = weights.config;
  if (tokenizer.vocabSize !== c.vocab) throw new Error(`vocab ${c.vocab} != tokenizer's ${tokenizer.vocabSize}`);
  const eos = tokenizer.specialIds['<|im_end|>'];
  const pad = tokenizer.specialIds['<|endoftext|>'];
  await mkdir(path.join(dir, 'onnx'), { recursive: true });
  const json = (name: string, value: unknown) => writeFile(path.join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
  await json('config.json', modelConfig(weights, tokenizer));
  await json('generation_config.json', { bos_token_id: pad, eos_token_id: eos, pad_token_id: pad, do_sample: false });
  await json('tokenizer.json', tokenizer.tokenizer);
  await json('tokenizer_config.json', tokenizer.tokenizerConfig);
  await writeFile(path.join(dir, GRAPH_FILE[format]), buildGraph(weights, { weights: format }));
}
