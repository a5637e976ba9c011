// Temperature and top-p sampling with a counter-based draw: the random number for a position depends only on
// the seed and that position, so a job resumed on another peer from "prompt + tokens so far", or a pipeline whose
// last stage samples (docs/pipeline.md), makes exactly the tokens one uninterrupted run would have made. Pure: the
// worker's transformers.js processor and the pipeline's last stage both call it.
import type { Sampling } from './engine-protocol.ts';

/** A uniform number in [0, 1) for (seed, counter): two rounds of a 32-bit integer hash (splitmix-style). */
export function uniform(seed: number, counter: number): number {
  let h = (seed ^ Math.imul(counter + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  for (let round = 0; round < 2; round++) {
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
    h = (h ^ (h >>> 16)) >>> 0;
    h = (h + counter + round * 0x632be5ab) >>> 0;
  }
  return h / 2 ** 32;
}

/** Logits further than this below the maximum (after temperature) hold less than e^-20 of the mass each. */
const NEGLIGIBLE = 20;

/** Picks one token from `logits` (in place: the rest become -Infinity, so the greedy step takes it). */
export function sampleInPlace(
  logits: Float32Array,
  sampling: Pick<Sampling, 'temperature' | 'topP'>,
  draw: number,
): number {
  let max = -Infinity;
  for (const value of logits) if (value > max) max = value;
  // Only tokens near the top can matter: sorting the whole vocabulary (up to 150k entries) every step would
  // cost more than the model's own step on small models.
  const cut = max - NEGLIGIBLE * sampling.temperature;
  const candidates: number[] = [];
  for (let i = 0; i < logits.length; i++) if ((logits[i] ?? -Infinity) >= cut) candidates.push(i);
  candidates.sort((a, b) => (logits[b] ?? 0) - (logits[a] ?? 0) || a - b);
  const weights = candidates.map((i) => Math.exp(((logits[i] ?? 0) - max) / sampling.temperature));
  const mass = weights.reduce((a, b) => a + b, 0);
  // Nucleus: the smallest prefix of the sorted candidates whose probability reaches top-p.
  let keep = 0;
  let kept = 0;
  while (keep < candidates.length && kept < sampling.topP * mass) kept += weights[keep++] ?? 0;
  let target = draw * kept;
  let chosen = candidates[0] ?? 0;
  for (let i = 0; i < keep; i++) {
    target -= weights[i] ?? 0;
    chosen = candidates[i] ?? chosen;
    if (target < 0) break;
  }
  logits.fill(-Infinity);
  logits[chosen] = 0;
  return chosen;
}

/**
 * An answer's first token may not end it: the tokens of `end` (the model's end-of-sequence ids) are taken out of the
 * running there, as `min_new_tokens: 1` does in Hugging Face's generate. A small model may otherwise end at once
 * (the bundled nano model did for about one seed in twenty), and an empty answer is never what was asked for.
 * The rule looks at the position only, so a job resumed elsewhere or run as a pipeline draws what one uninterrupted
 * engine draws. Logits where every token ends the answer are left as they are.
 */
export function forbidEnd(logits: Float32Array, end: Iterable<number>): void {
  const ids = [...end].filter((id) => id >= 0 && id < logits.length);
  const ending = new Set(ids);
  let other = false;
  for (let i = 0; i < logits.length && !other; i++) other = !ending.has(i) && (logits[i] ?? -Infinity) > -Infinity;
  if (!other) return;
  for (const id of ids) logits[id] = -Infinity;
}

/** The index of the largest value, the first on ties (what greedy decoding takes). */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] ?? -Infinity) > (values[best] ?? -Infinity)) best = i;
  return best;
}
