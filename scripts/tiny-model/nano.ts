// The bundled nano demo model: a Llama-architecture decoder whose weights hold word-to-word statistics of
// Shakespeare's plays, so sampling from it gives Markov-style lines instead of random tokens. It is a demo
// model, said plainly in the catalogue: it continues text, it does not follow instructions.
//
// How: a byte-level BPE tokenizer whose merges build the corpus' most frequent words; the corpus, tokenized
// with that tokenizer, gives bigram log-probabilities log P(next | current); their rank-k approximation is
// split into the token embedding (k directions plus one slack dimension that gives every row the same norm, so
// the final RMSNorm scales all rows alike) and the LM head. The one decoder layer's output projections are
// zero, so the residual stream carries the current token's embedding straight to the head.
//   npm run model:nano -- --out DIR
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { SPECIAL_TOKENS, buildTokenizer, byteToUnicode } from './tokenizer.ts';
import { type TinyConfig, type TinyWeights, rng } from './weights.ts';
import { writeModel } from './write-model.ts';

export const NANO_CORPUS = path.join(import.meta.dirname, 'corpus', 'tinyshakespeare.txt');
const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface NanoOptions {
  words?: number;
  rank?: number;
  maxPositions?: number;
}

function toByteLevel(piece: string, table: string[]): string {
  return Array.from(Buffer.from(piece, 'utf8'), (byte) => table[byte] ?? '').join('');
}

/** Merges that build each word from its characters, left to right; more frequent words first. */
export function wordMerges(words: string[]): { merges: [string, string][]; tokens: string[] } {
  const merges: [string, string][] = [];
  const tokens: string[] = [];
  const seen = new Set<string>();
  for (const word of words) {
    const chars = Array.from(word);
    let prefix = chars[0] ?? '';
    for (const char of chars.slice(1)) {
      const merged = prefix + char;
      if (!seen.has(merged)) {
        seen.add(merged);
        merges.push([prefix, char]);
        tokens.push(merged);
      }
      prefix = merged;
    }
  }
  return { merges, tokens };
}

/** Orthonormalises the k columns of a row-major [n, k] matrix in place (modified Gram-Schmidt). */
function orthonormalize(q: Float64Array, n: number, k: number) {
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < j; i++) {
      let dot = 0;
      for (let r = 0; r < n; r++) dot += (q[r * k + i] ?? 0) * (q[r * k + j] ?? 0);
      for (let r = 0; r < n; r++) q[r * k + j] = (q[r * k + j] ?? 0) - dot * (q[r * k + i] ?? 0);
    }
    let norm = 0;
    for (let r = 0; r < n; r++) norm += (q[r * k + j] ?? 0) ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let r = 0; r < n; r++) q[r * k + j] = (q[r * k + j] ?? 0) / norm;
  }
}

/** M X (or Mᵀ X) for a dense row-major M [n, n] and X [n, k]; the result is [n, k]. */
function multiply(m: Float32Array, n: number, x: Float64Array, k: number, transpose: boolean): Float64Array {
  const out = new Float64Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      const value = m[r * n + c] ?? 0;
      if (value === 0) continue;
      const [to, from] = transpose ? [c, r] : [r, c];
      for (let j = 0; j < k; j++) out[to * k + j] = (out[to * k + j] ?? 0) + value * (x[from * k + j] ?? 0);
    }
  }
  return out;
}

/** Q [n, k] with orthonormal columns spanning the dominant column space of M [n, n] (subspace iteration). */
function dominantSubspace(m: Float32Array, n: number, k: number, iterations: number, seed: number): Float64Array {
  const next = rng(seed);
  let q: Float64Array = Float64Array.from({ length: n * k }, () => next() - 0.5);
  orthonormalize(q, n, k);
  for (let it = 0; it < iterations; it++) {
    // Q = orth(M Mᵀ Q).
    const z = multiply(m, n, multiply(m, n, q, k, true), k, false);
    orthonormalize(z, n, k);
    q = z;
  }
  return q;
}

export async function buildNanoModel(out: string, options: NanoOptions = {}) {
  const wordCount = options.words ?? 1000;
  const rank = options.rank ?? 127;
  const maxPositions = options.maxPositions ?? 512;
  const text = await readFile(NANO_CORPUS, 'utf8');

  // 1. Tokenizer: the most frequent pre-tokenized pieces become whole-word tokens.
  const table = byteToUnicode();
  const counts = new Map<string, number>();
  for (const piece of text.match(PRETOKENIZE) ?? []) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const ranked = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([piece]) => toByteLevel(piece, table));
  const words = ranked.filter((word) => Array.from(word).length > 1).slice(0, wordCount);
  // Single characters frequent enough to be pieces of their own: punctuation, newline.
  const marks = ranked.slice(0, wordCount).filter((word) => Array.from(word).length === 1);
  const { merges, tokens } = wordMerges(words);
  const tokenizerFiles = buildTokenizer(merges, tokens, maxPositions);
  const vocab = tokenizerFiles.vocabSize;

  // 2. Bigram statistics over the corpus as the runtime tokenizer splits it. A blank line ends a speech: the
  // newline that starts one is followed by end-of-turn instead.
  const hidden = rank + 1;
  const config: TinyConfig = {
    layers: 1,
    hidden,
    heads: 2,
    intermediate: 64,
    vocab,
    maxPositions,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    seed: 11,
  };
  const placeholder = emptyWeights(config);
  await writeModel(out, placeholder, tokenizerFiles);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(path.resolve(out));
  const tokenizer = await AutoTokenizer.from_pretrained(path.basename(path.resolve(out)));
  const ids: number[] = [];
  for (const speech of text.split('\n\n'))
    ids.push(...tokenizer.encode(`${speech}\n`), tokenizerFiles.specialIds['<|im_end|>']);
  const newline = tokenizer.encode('\n')[0] ?? -1;
  const bigrams = new Float32Array(vocab * vocab);
  const unigram = new Float64Array(vocab);
  for (let i = 0; i + 1 < ids.length; i++) {
    const cur = ids[i] ?? 0;
    const nxt = ids[i + 1] ?? 0;
    unigram[nxt] = (unigram[nxt] ?? 0) + 1;
    // After end-of-turn comes the next speaker's turn: the chat template's "assistant\n" stands for it.
    const context = cur === tokenizerFiles.specialIds['<|im_end|>'] ? newline : cur;
    bigrams[context * vocab + nxt] = (bigrams[context * vocab + nxt] ?? 0) + 1;
  }
  const total = unigram.reduce((a, b) => a + b, 0);
  // The model only says whole words, punctuation and end-of-turn: fragments of rare words (which the
  // tokenizer needs to read any text) would make its output unreadable.
  const vocabIds = (tokenizerFiles.tokenizer as { model: { vocab: Record<string, number> } }).model.vocab;
  const sayable = new Set([...words, ...marks].map((token) => vocabIds[token] ?? -1));
  sayable.add(tokenizerFiles.specialIds['<|im_end|>']);
  // Smoothed, floored, row-centred log-probabilities (a constant per row does not change the softmax).
  const smoothing = 2;
  const floor = Math.log(1e-6);
  const logp = new Float32Array(vocab * vocab);
  for (let r = 0; r < vocab; r++) {
    let rowTotal = 0;
    for (let c = 0; c < vocab; c++) rowTotal += bigrams[r * vocab + c] ?? 0;
    let mean = 0;
    for (let c = 0; c < vocab; c++) {
      const p = ((bigrams[r * vocab + c] ?? 0) + smoothing * ((unigram[c] ?? 0) / total)) / (rowTotal + smoothing);
      const value = sayable.has(c) ? Math.max(floor, Math.log(p || 1e-12)) : floor;
      logp[r * vocab + c] = value;
      mean += value / vocab;
    }
    for (let c = 0; c < vocab; c++) logp[r * vocab + c] = (logp[r * vocab + c] ?? 0) - mean;
  }

  // 3. Rank-k factorisation: logits(cur) ≈ Q[cur] · (Qᵀ logp).
  const q = dominantSubspace(logp, vocab, rank, 3, 5);
  const head = multiply(logp, vocab, q, rank, true); // (Qᵀ logp)ᵀ, [vocab, rank]
  let maxNorm = 0;
  for (let r = 0; r < vocab; r++) {
    let norm = 0;
    for (let j = 0; j < rank; j++) norm += (q[r * rank + j] ?? 0) ** 2;
    maxNorm = Math.max(maxNorm, norm);
  }
  const scale = 10; // keeps RMSNorm's epsilon negligible
  const weights = emptyWeights(config);
  for (let r = 0; r < vocab; r++) {
    let norm = 0;
    for (let j = 0; j < rank; j++) {
      const value = q[r * rank + j] ?? 0;
      weights.embed[r * hidden + j] = scale * value;
      norm += value * value;
    }
    weights.embed[r * hidden + rank] = scale * Math.sqrt(Math.max(0, maxNorm - norm));
  }
  const rms = Math.sqrt(maxNorm / hidden); // every row's RMS after the slack dimension, before `scale`
  for (let j = 0; j < rank; j++)
    for (let c = 0; c < vocab; c++) weights.lmHead[j * vocab + c] = (head[c * rank + j] ?? 0) * rms;
  await writeModel(out, weights, tokenizerFiles);
  return { weights, tokenizer: tokenizerFiles, words };
}

/** One decoder layer whose attention and MLP outputs are zero; norms are identity. */
function emptyWeights(config: TinyConfig): TinyWeights {
  const next = rng(config.seed);
  const { hidden: d, intermediate: f, vocab: v } = config;
  const small = (n: number) => Float32Array.from({ length: n }, () => (next() - 0.5) * 0.1);
  return {
    config,
    embed: new Float32Array(v * d),
    layers: [
      {
        attnNorm: new Float32Array(d).fill(1),
        wq: small(d * d),
        wk: small(d * d),
        wv: small(d * d),
        wo: new Float32Array(d * d),
        mlpNorm: new Float32Array(d).fill(1),
        wGate: small(d * f),
        wUp: small(d * f),
        wDown: new Float32Array(f * d),
      },
    ],
    finalNorm: new Float32Array(d).fill(1),
    lmHead: new Float32Array(d * v),
  };
}

export const NANO_SPECIAL_TOKENS = SPECIAL_TOKENS;

/** Hash of everything the nano model is made from: regenerate only when it changes. */
async function sourceHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of [
    'nano.ts',
    'tokenizer.ts',
    'weights.ts',
    'onnx-graph.ts',
    'write-model.ts',
    'corpus/tinyshakespeare.txt',
  ]) {
    hash.update(await readFile(path.join(import.meta.dirname, file)));
  }
  return hash.digest('hex');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, 'if-stale': { type: 'boolean' } } });
  if (!values.out) {
    console.error('Usage: npm run model:nano -- --out DIR [--if-stale]');
    process.exit(2);
  }
  const stamp = path.join(values.out, 'source.sha256');
  const source = await sourceHash();
  if (values['if-stale'] && (await readFile(stamp, 'utf8').catch(() => '')) === source) {
    console.log(`${values.out} is up to date`);
  } else {
    const started = Date.now();
    const { weights } = await buildNanoModel(values.out);
    await writeFile(stamp, source);
    console.log(
      `wrote ${values.out}: vocab ${weights.config.vocab}, width ${weights.config.hidden}, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }
}
