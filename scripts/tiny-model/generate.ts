// npm run model:generate -- --out DIR [--layers 2] [--hidden 64] [--heads 4] [--intermediate 4*hidden]
//                            [--positions 512] [--vocab 259..935] [--seed 1] [--format fp32|q8|q4]
// Writes a deterministic tiny Llama-architecture model (random weights, byte-level tokenizer) that
// transformers.js loads. For the benchmark model: --layers 8 --hidden 512 --heads 8 (about 25M parameters).
import { parseArgs } from 'node:util';
import { buildTokenizer } from './tokenizer.ts';
import { type TinyConfig, randomWeights } from './weights.ts';
import { GRAPH_FILE, type PlainFormat, writeModel } from './write-model.ts';

export interface GenerateOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  intermediate?: number;
  maxPositions?: number;
  seed?: number;
  /** Vocabulary size: 259 (bytes + 3 specials) plus letter-pair merges, up to 259 + 676. */
  vocab?: number;
  /** How the graph stores its weights, and so its file name (write-model.ts GRAPH_FILE); default fp32. */
  format?: PlainFormat;
}

const BASE_VOCAB = 256 + 3;

/** Letter pairs ("ab", "ac", ...) as merges, to grow the vocabulary to `vocab` tokens. */
export function letterPairs(vocab: number): [string, string][] {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const pairs: [string, string][] = [];
  for (const a of letters) for (const b of letters) pairs.push([a, b]);
  if (vocab < BASE_VOCAB || vocab > BASE_VOCAB + pairs.length) {
    throw new Error(`vocab must be between ${BASE_VOCAB} and ${BASE_VOCAB + pairs.length}`);
  }
  return pairs.slice(0, vocab - BASE_VOCAB);
}

export function tinyConfig(options: GenerateOptions, vocab: number): TinyConfig {
  const hidden = options.hidden ?? 64;
  const heads = options.heads ?? 4;
  if (hidden % heads !== 0 || (hidden / heads) % 2 !== 0) throw new Error('hidden / heads must be an even integer');
  return {
    layers: options.layers ?? 2,
    hidden,
    heads,
    intermediate: options.intermediate ?? hidden * 4,
    vocab,
    maxPositions: options.maxPositions ?? 512,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    seed: options.seed ?? 1,
  };
}

/** Generates a random-weight model into `dir`; returns its weights (for the reference forward pass). */
export async function generateRandomModel(dir: string, options: GenerateOptions = {}) {
  const merges = letterPairs(options.vocab ?? BASE_VOCAB);
  const tokenizer = buildTokenizer(
    merges,
    merges.map(([a, b]) => a + b),
    options.maxPositions ?? 512,
  );
  const weights = randomWeights(tinyConfig(options, tokenizer.vocabSize));
  await writeModel(dir, weights, tokenizer, options.format);
  return { weights, tokenizer };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      layers: { type: 'string' },
      hidden: { type: 'string' },
      heads: { type: 'string' },
      intermediate: { type: 'string' },
      positions: { type: 'string' },
      seed: { type: 'string' },
      vocab: { type: 'string' },
      format: { type: 'string' },
    },
  });
  if (!values.out) {
    console.error('Usage: npm run model:generate -- --out DIR [--layers N --hidden N --heads N --seed N]');
    process.exit(2);
  }
  if (values.format !== undefined && !Object.hasOwn(GRAPH_FILE, values.format)) {
    console.error(`--format must be one of ${Object.keys(GRAPH_FILE).join(', ')}`);
    process.exit(2);
  }
  const num = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  const { weights } = await generateRandomModel(values.out, {
    layers: num(values.layers),
    hidden: num(values.hidden),
    heads: num(values.heads),
    intermediate: num(values.intermediate),
    maxPositions: num(values.positions),
    seed: num(values.seed),
    vocab: num(values.vocab),
    format: values.format as PlainFormat | undefined,
  });
  const c = weights.config;
  const params =
    c.vocab * c.hidden * 2 +
    c.layers * (4 * c.hidden * c.hidden + 3 * c.hidden * c.intermediate + 2 * c.hidden) +
    c.hidden;
  console.log(
    `wrote ${values.out}: ${c.layers} layers, width ${c.hidden}, ${c.heads} heads, vocab ${c.vocab}, ${(params / 1e6).toFixed(2)}M parameters`,
  );
}
