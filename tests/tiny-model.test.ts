// The generated models are real decoders: transformers.js (onnxruntime-node) gives exactly the greedy tokens
// of the TypeScript reference forward pass, loaded from disk and through the server's download proxy.
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  type PreTrainedTokenizer,
  type Tensor,
  env,
} from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { greedy } from '../scripts/tiny-model/reference.ts';
import type { TinyWeights } from '../scripts/tiny-model/weights.ts';
import { downloadModel, signUpCookie, startServer } from './support/server-process.ts';

const PROMPTS = ['Hello world', 'The quick brown fox jumps over the lazy dog.', 'a', 'Ünïcödé ✓ and numbers 12345'];
const MAX_NEW = 16;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-tiny-'));
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dir;
  env.useFSCache = false;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function compare(
  tokenizer: PreTrainedTokenizer,
  model: Awaited<ReturnType<typeof AutoModelForCausalLM.from_pretrained>>,
  weights: TinyWeights,
  eos: number,
) {
  const lengths: number[] = [];
  for (const prompt of PROMPTS) {
    const text = tokenizer.apply_chat_template([{ role: 'user', content: prompt }], {
      tokenize: false,
      add_generation_prompt: true,
    }) as string;
    const inputs = tokenizer(text);
    const promptIds = Array.from(inputs.input_ids.data as BigInt64Array, Number);
    const output = (await model.generate({ ...inputs, max_new_tokens: MAX_NEW, do_sample: false })) as Tensor;
    const generated = Array.from(output.data as BigInt64Array, Number).slice(promptIds.length);
    expect(generated, prompt).toEqual(greedy(weights, promptIds, MAX_NEW, [eos]));
    lengths.push(generated.length);
  }
  // Not a degenerate model that stops at once: some answers run the full length.
  expect(Math.max(...lengths)).toBe(MAX_NEW);
}

describe.each([
  { name: 'mesh/tiny-a', layers: 2, hidden: 64, heads: 4, seed: 1 },
  { name: 'mesh/tiny-b', layers: 3, hidden: 96, heads: 6, seed: 7, vocab: 600 },
])('a generated model ($name)', (options) => {
  it('greedy tokens through transformers.js equal the reference forward pass, with the KV cache', async () => {
    const { weights, tokenizer: files } = await generateRandomModel(path.join(dir, options.name), options);
    expect(weights.config.vocab).toBe(options.vocab ?? 259);
    const tokenizer = await AutoTokenizer.from_pretrained(options.name);
    const model = await AutoModelForCausalLM.from_pretrained(options.name, { dtype: 'fp32' });
    // The chat template and special tokens are the ones the engine will use.
    const chat = tokenizer.apply_chat_template([{ role: 'user', content: 'hi' }], {
      tokenize: false,
      add_generation_prompt: true,
    }) as string;
    expect(chat).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
    expect(tokenizer.encode(chat)[0]).toBe(files.specialIds['<|im_start|>']);
    expect(tokenizer.decode(tokenizer.encode('Round trip ✓ text'))).toBe('Round trip ✓ text');
    await compare(tokenizer, model, weights, files.specialIds['<|im_end|>']);
    await model.dispose();
  }, 120_000);
});

describe('a generated model downloaded through the proxy', () => {
  it("loads in transformers.js from the server's /models route and gives the reference tokens", async () => {
    const local = path.join(dir, 'mesh', 'proxied');
    const { weights, tokenizer: files } = await generateRandomModel(local, {
      layers: 2,
      hidden: 32,
      heads: 2,
      seed: 3,
    });
    const names = [
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'onnx/model.onnx',
    ];
    const hub = new FakeHub();
    await hub.start();
    const { commit } = await hub.addRepo(
      'mesh/proxied',
      Object.fromEntries(
        await Promise.all(names.map(async (n) => [n, bufferContent(await readFile(path.join(local, n)))] as const)),
      ),
    );
    await writeFile(
      path.join(dir, 'manifest.json'),
      JSON.stringify({
        mode: 'replace',
        models: [
          {
            id: 'proxied',
            name: 'Proxied',
            repo: 'mesh/proxied',
            revision: 'main',
            task: 'text-generation',
            dtype: { webgpu: 'fp32', wasm: 'fp32' },
            contextLength: 512,
            license: 'mit',
            files: names.map((p) => ({ path: p })),
          },
        ],
      }),
    );
    const server = await startServer({
      DATA_DIR: path.join(dir, 'server'),
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: path.join(dir, 'manifest.json'),
      CLIENT_DIST_DIR: path.join(dir, 'none'),
    });
    try {
      await downloadModel(server.url, await signUpCookie(server.url, 'tiny-model-test'), 'proxied');

      // transformers.js uses the server as its model host, pinned to the commit (immutable URLs).
      env.allowLocalModels = false;
      env.allowRemoteModels = true;
      env.remoteHost = `${server.url}/models/`;
      env.remotePathTemplate = '{model}/resolve/{revision}/';
      // onnxruntime-node loads from a path or buffer: remote files pass through transformers.js' file cache.
      env.useFSCache = true;
      env.cacheDir = path.join(dir, 'tfjs-cache');
      const tokenizer = await AutoTokenizer.from_pretrained('mesh/proxied', { revision: commit });
      const model = await AutoModelForCausalLM.from_pretrained('mesh/proxied', { revision: commit, dtype: 'fp32' });
      await compare(tokenizer, model, weights, files.specialIds['<|im_end|>']);
      await model.dispose();
      expect(hub.requests.filter((r) => r.path.startsWith('/cdn/'))).toHaveLength(1);
    } finally {
      env.allowLocalModels = true;
      env.allowRemoteModels = false;
      env.useFSCache = false;
      server.child.kill('SIGTERM');
      await server.exited;
      await hub.stop();
    }
  }, 120_000);
});
