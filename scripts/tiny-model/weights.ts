// Deterministic weights for a tiny Llama-architecture decoder. Matrices are row-major [in, out] so that
// `x @ W` is the same product in the ONNX graph (MatMul) and in the reference forward pass.

export interface TinyConfig {
  layers: number;
  hidden: number;
  heads: number;
  /** Key/value heads (grouped-query attention, as SmolLM2, Qwen2.5 and Llama 3.2 have); default `heads`. */
  kvHeads?: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  ropeTheta: number;
  rmsEps: number;
  seed: number;
}

export interface LayerWeights {
  attnNorm: Float32Array; // [hidden]
  wq: Float32Array; // [hidden, hidden]
  wk: Float32Array; // [hidden, kvHeads * headDim]
  wv: Float32Array;
  wo: Float32Array;
  mlpNorm: Float32Array; // [hidden]
  wGate: Float32Array; // [hidden, intermediate]
  wUp: Float32Array; // [hidden, intermediate]
  wDown: Float32Array; // [intermediate, hidden]
}

export interface TinyWeights {
  config: TinyConfig;
  embed: Float32Array; // [vocab, hidden]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [hidden]
  lmHead: Float32Array; // [hidden, vocab]
}

/** mulberry32: small, fast, and the same on every platform. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomWeights(config: TinyConfig): TinyWeights {
  const next = rng(config.seed);
  const uniform = (n: number, scale: number) => Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);
  const near = (n: number, center: number, spread: number) =>
    Float32Array.from({ length: n }, () => center + (next() * 2 - 1) * spread);
  const { hidden: d, intermediate: f, vocab: v } = config;
  const kv = kvWidth(config);
  // Gains above Xavier keep the logits spread out, so greedy choices are far from ties.
  const linear = (fanIn: number, n: number) => uniform(n, 2 / Math.sqrt(fanIn));
  return {
    config,
    embed: uniform(v * d, 1),
    layers: Array.from({ length: config.layers }, () => ({
      attnNorm: near(d, 1, 0.1),
      wq: linear(d, d * d),
      wk: linear(d, d * kv),
      wv: linear(d, d * kv),
      wo: linear(d, d * d),
      mlpNorm: near(d, 1, 0.1),
      wGate: linear(d, d * f),
      wUp: linear(d, d * f),
      wDown: linear(f, f * d),
    })),
    finalNorm: near(d, 1, 0.1),
    lmHead: linear(d, d * v),
  };
}

/** Width of the key and value projections: kvHeads * headDim. */
export function kvWidth(config: TinyConfig): number {
  return (config.kvHeads ?? config.heads) * (config.hidden / config.heads);
}

/** Rotary tables as Llama computes them: cos/sin of pos * theta^(-2i/hd), the half repeated twice. */
export function ropeTables(config: TinyConfig): { cos: Float32Array; sin: Float32Array } {
  const hd = config.hidden / config.heads;
  const half = hd / 2;
  const cos = new Float32Array(config.maxPositions * hd);
  const sin = new Float32Array(config.maxPositions * hd);
  for (let pos = 0; pos < config.maxPositions; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * config.ropeTheta ** (-(2 * i) / hd);
      cos[pos * hd + i] = cos[pos * hd + i + half] = Math.cos(angle);
      sin[pos * hd + i] = sin[pos * hd + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
