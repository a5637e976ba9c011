// A plain TypeScript forward pass of the tiny decoder: the oracle the ONNX graph is tested against.
import { roundHalf } from './quantize.ts';
import { type TinyWeights, kvWidth, ropeTables } from './weights.ts';

/**
 * What the graph rounds between its float32 steps. `half`: keys and values are stored in a float16 KV cache and
 * the logits come out float16 (the fp16 files; their weights are rounded already in `weights`, see
 * export-shapes.ts). Each position's keys and values are rounded once, when made, so recomputing the whole
 * sequence here gives what the graph gives step by step with its cache. `halfLinear`: every projection takes its
 * input rounded to float16 and gives its output rounded to float16 (MatMulNBits in float16, the q4f16 files; its
 * sums are float32, as ONNX Runtime's CPU kernel makes them).
 */
export interface ReferenceOptions {
  half?: boolean;
  halfLinear?: boolean;
}

function rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  let sum = 0;
  for (const value of x) sum += value * value;
  const scale = 1 / Math.sqrt(sum / x.length + eps);
  return x.map((value, i) => value * scale * (weight[i] ?? 0));
}

/** out[j] = sum_i x[i] * W[i, j] with W row-major [rows, cols]. */
function matVec(x: Float32Array, w: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(cols);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i] ?? 0;
    if (xi === 0) continue;
    const row = i * cols;
    for (let j = 0; j < cols; j++) out[j] = (out[j] ?? 0) + xi * (w[row + j] ?? 0);
  }
  return out;
}

function rotate(x: Float32Array, offset: number, hd: number, pos: number, cos: Float32Array, sin: Float32Array) {
  const half = hd / 2;
  const out = new Float32Array(hd);
  for (let i = 0; i < hd; i++) {
    const rotated = i < half ? -(x[offset + i + half] ?? 0) : (x[offset + i - half] ?? 0);
    out[i] = (x[offset + i] ?? 0) * (cos[pos * hd + i] ?? 0) + rotated * (sin[pos * hd + i] ?? 0);
  }
  return out;
}

/** Logits of the last position for a whole sequence (no KV cache, like the exported graph). */
export function lastLogits(weights: TinyWeights, ids: readonly number[], options: ReferenceOptions = {}): Float32Array {
  const { hidden: d, heads, intermediate: f, vocab: v, rmsEps } = weights.config;
  const hd = d / heads;
  const kvHeads = weights.config.kvHeads ?? heads;
  const kv = kvWidth(weights.config);
  // Grouped-query attention: query head h reads key/value head floor(h / group).
  const group = heads / kvHeads;
  const store = options.half ? roundHalf : (x: Float32Array) => x;
  const lin = options.halfLinear
    ? (x: Float32Array, w: Float32Array, cols: number) => roundHalf(matVec(roundHalf(x), w, cols))
    : matVec;
  const { cos, sin } = ropeTables(weights.config);
  let xs = ids.map((id) => weights.embed.slice(id * d, (id + 1) * d));
  for (const layer of weights.layers) {
    const normed = xs.map((x) => rmsNorm(x, layer.attnNorm, rmsEps));
    const q = normed.map((x) => lin(x, layer.wq, d));
    const k = normed.map((x) => lin(x, layer.wk, kv));
    const vv = normed.map((x) => store(lin(x, layer.wv, kv)));
    const qr = q.map((row, pos) => Array.from({ length: heads }, (_, h) => rotate(row, h * hd, hd, pos, cos, sin)));
    const kr = k.map((row, pos) =>
      Array.from({ length: kvHeads }, (_, h) => store(rotate(row, h * hd, hd, pos, cos, sin))),
    );
    xs = xs.map((x, t) => {
      const ctx = new Float32Array(d);
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const scores = new Float64Array(t + 1);
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += (qr[t]?.[h]?.[i] ?? 0) * (kr[s]?.[kvh]?.[i] ?? 0);
          scores[s] = dot / Math.sqrt(hd);
        }
        const max = Math.max(...scores);
        let total = 0;
        for (let s = 0; s <= t; s++) total += scores[s] = Math.exp((scores[s] ?? 0) - max);
        for (let s = 0; s <= t; s++) {
          const p = (scores[s] ?? 0) / total;
          for (let i = 0; i < hd; i++) ctx[h * hd + i] = (ctx[h * hd + i] ?? 0) + p * (vv[s]?.[kvh * hd + i] ?? 0);
        }
      }
      const attn = lin(ctx, layer.wo, d);
      const after = x.map((value, i) => value + (attn[i] ?? 0));
      const m = rmsNorm(after, layer.mlpNorm, rmsEps);
      const gate = lin(m, layer.wGate, f);
      const up = lin(m, layer.wUp, f);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * (up[i] ?? 0));
      const down = lin(act, layer.wDown, d);
      return after.map((value, i) => value + (down[i] ?? 0));
    });
  }
  const last = rmsNorm(xs[xs.length - 1] ?? new Float32Array(d), weights.finalNorm, rmsEps);
  return store(lin(last, weights.lmHead, v));
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] ?? -Infinity) > (values[best] ?? -Infinity)) best = i;
  return best;
}

/** Greedy decoding: the tokens a deterministic decoder must produce after `prompt`. */
export function greedy(
  weights: TinyWeights,
  prompt: readonly number[],
  maxNewTokens: number,
  eosIds: readonly number[] = [],
  options: ReferenceOptions = {},
): number[] {
  const ids = [...prompt];
  const out: number[] = [];
  for (let step = 0; step < maxNewTokens; step++) {
    const next = argmax(lastLogits(weights, ids, options));
    out.push(next);
    if (eosIds.includes(next)) break;
    ids.push(next);
  }
  return out;
}
