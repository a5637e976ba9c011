// The generator's quantised graphs (q8: model_quantized.onnx, q4: model_q4.onnx) are the same decoder as the float32
// one: onnxruntime-node runs each under its transformers.js file name. q4's logits are the reference forward pass's
// on its dequantised weights; q8 also quantises the activations as it runs, so its logits stay within that error of
// the float32 reference (bench/engine-dtype.ts measures their speed).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { lastLogits } from '../scripts/tiny-model/reference.ts';
import { GRAPH_FILE } from '../scripts/tiny-model/write-model.ts';
import { storedWeights } from '../scripts/tiny-model/export-shapes.ts';

const OPTIONS = { layers: 2, hidden: 64, heads: 4, seed: 3 };
const IDS = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100];
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-formats-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** One prefill of IDS with an empty KV cache; the logits at the last position. */
async function runGraph(file: string, layers: number, heads: number, headDim: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  try {
    const n = IDS.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(IDS, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
        [1, n],
      ),
    };
    for (let l = 0; l < layers; l++) {
      for (const kind of ['key', 'value'])
        feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
    }
    const logits = (await session.run(feeds)).logits as ort.Tensor;
    const vocab = logits.dims[2] ?? 0;
    return (logits.data as Float32Array).slice((n - 1) * vocab, n * vocab);
  } finally {
    await session.release();
  }
}

describe.each([
  { format: 'q8', bound: 0.2 },
  { format: 'q4', bound: 1e-3 },
] as const)('a generated $format model', ({ format, bound }) => {
  it(`is written as ${GRAPH_FILE[format]} and computes the decoder's logits within its rounding`, async () => {
    const local = path.join(dir, format);
    const { weights } = await generateRandomModel(local, { ...OPTIONS, format });
    const { layers, heads, hidden } = weights.config;
    const logits = await runGraph(path.join(local, GRAPH_FILE[format]), layers, heads, hidden / heads);
    const reference = lastLogits(format === 'q4' ? storedWeights(weights, 'q4') : weights, IDS);
    expect(logits.length).toBe(reference.length);
    let error = 0;
    let scale = 0;
    for (let i = 0; i < reference.length; i++) {
      error = Math.max(error, Math.abs((logits[i] ?? 0) - (reference[i] ?? 0)));
      scale = Math.max(scale, Math.abs(reference[i] ?? 0));
    }
    // A graph that ignored the weights, or read them in the wrong layout, is off by the logits' own size.
    expect(scale).toBeGreaterThan(0);
    expect(error / scale).toBeLessThan(bound);
  });
});
