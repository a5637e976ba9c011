// Inference engine benchmarks (issue 4, section 4):
//   npx tsx bench/engine.ts            (BENCH_TOKENS=128 by default)
// 1. Engine overhead: the engine's decode tokens/s on the generated benchmark model vs a bare onnxruntime-node
//    session loop (same graph, same prompt ids, greedy, KV cache) in the same process.
// 2. Browser vs native: the worker bundle in headless Chromium (WASM) vs the engine in Node, same model.
// 3. Time to first token and load time from cache, for the nano model and the benchmark model.
// Models load through the real server process (the benchmark model downloaded from the fake Hub by the proxy).
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AutoTokenizer } from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import { FakeHub } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import type { EngineMessage } from '../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { buildClient, launchChromium, runWorker } from '../tests/support/browser.ts';
import { nanoEngineModel, publishModels } from '../tests/support/model-fixtures.ts';
import { downloadModel, guestCookie, startServer } from '../tests/support/server-process.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
const RUNS = 3;
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const BENCH_DIR = process.env.BENCH_MODEL_DIR ?? '/tmp/models/mesh/bench';
const MESSAGES: EngineMessage[] = [
  { role: 'user', content: 'Write a long story about a mesh of browsers sharing one small model.' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: TOKENS };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const fmt = (n: number, digits = 1) => n.toFixed(digits);

/** Greedy decoding straight on an onnxruntime-node session: the floor the engine's overhead is measured against. */
async function bareLoop(
  modelPath: string,
  promptIds: number[],
  tokens: number,
  layers: number,
  heads: number,
  headDim: number,
) {
  const session = await ort.InferenceSession.create(modelPath);
  const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
  let past: Record<string, ort.Tensor> = {};
  for (let l = 0; l < layers; l++) {
    past[`past_key_values.${l}.key`] = empty();
    past[`past_key_values.${l}.value`] = empty();
  }
  let ids = promptIds;
  let position = 0;
  const stamps: number[] = [];
  const started = performance.now();
  for (let step = 0; step < tokens; step++) {
    const n = ids.length;
    const feeds: Record<string, ort.Tensor> = {
      ...past,
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(position + n).fill(1n), [1, position + n]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: n }, (_, i) => BigInt(position + i)),
        [1, n],
      ),
    };
    const out = await session.run(feeds);
    const logits = out.logits as ort.Tensor;
    const vocab = logits.dims[2] ?? 0;
    const data = logits.data as Float32Array;
    let best = 0;
    for (let v = 1; v < vocab; v++)
      if ((data[(n - 1) * vocab + v] ?? 0) > (data[(n - 1) * vocab + best] ?? 0)) best = v;
    stamps.push(performance.now());
    past = {};
    for (let l = 0; l < layers; l++) {
      past[`past_key_values.${l}.key`] = out[`present.${l}.key`] as ort.Tensor;
      past[`past_key_values.${l}.value`] = out[`present.${l}.value`] as ort.Tensor;
    }
    position += n;
    ids = [best];
  }
  await session.release();
  const first = stamps[0] ?? 0;
  const last = stamps.at(-1) ?? 0;
  return { ttftMs: first - started, tokensPerSecond: ((stamps.length - 1) * 1000) / (last - first) };
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-engine-'));
  if (!existsSync(path.join(BENCH_DIR, 'onnx/model.onnx'))) {
    console.log(`generating the benchmark model into ${BENCH_DIR} ...`);
    await generateRandomModel(BENCH_DIR, BENCH);
  }
  const config = JSON.parse(await readFile(path.join(BENCH_DIR, 'config.json'), 'utf8')) as {
    num_hidden_layers: number;
    num_attention_heads: number;
    hidden_size: number;
  };
  const hub = new FakeHub();
  await hub.start();
  const { manifestPath, published } = await publishModels(hub, dir, [
    { id: 'bench', from: BENCH_DIR, contextLength: BENCH.maxPositions },
  ]);
  // Built before the server starts: it registers the built files at start-up.
  const { workerPath } = await buildClient(path.join(dir, 'dist'));
  const server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    HF_ENDPOINT: hub.origin,
    MANIFEST_PATH: manifestPath,
    CLIENT_DIST_DIR: path.join(dir, 'dist'),
  });
  try {
    await downloadModel(server.url, await guestCookie(server.url), 'bench');
    const bench = published.bench?.model;
    if (!bench) throw new Error('the benchmark model was not published');
    const nano = await nanoEngineModel();

    // Node: first load fills the file cache; the second engine loads from it.
    const node: Record<
      string,
      { loadMs: number; ttftMs: number; tokensPerSecond: number; tokens: number; promptTokens: number }
    > = {};
    for (const model of [nano, bench]) {
      const filler = new InferenceEngine({
        modelHost: `${server.url}/models/`,
        cacheDir: path.join(dir, 'node-cache'),
      });
      await filler.load(model, 'auto', () => {});
      await filler.unload();
      const engine = new InferenceEngine({
        modelHost: `${server.url}/models/`,
        cacheDir: path.join(dir, 'node-cache'),
      });
      const info = await engine.load(model, 'auto', () => {});
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        await engine.reset();
        runs.push(await engine.generate(MESSAGES, GREEDY, () => {}));
      }
      const last = runs.at(-1);
      node[model.id] = {
        loadMs: info.loadMs,
        ttftMs: median(runs.map((r) => r.ttftMs)),
        tokensPerSecond: median(runs.map((r) => r.tokensPerSecond)),
        tokens: last?.completionTokens ?? 0,
        promptTokens: last?.promptTokens ?? 0,
      };
      await engine.unload();
    }

    // Bare onnxruntime-node on the benchmark model's own file, same prompt ids, same number of tokens.
    const tokenizer = await AutoTokenizer.from_pretrained(bench.repo, { revision: bench.revision });
    const { input_ids: promptIds } = tokenizer.apply_chat_template(MESSAGES, {
      add_generation_prompt: true,
      tokenize: true,
      return_tensor: false,
      return_dict: true,
    }) as unknown as { input_ids: number[] };
    if (promptIds.length !== node.bench?.promptTokens)
      throw new Error('prompt ids differ between the engine and the bare loop');
    const bareRuns = [];
    for (let i = 0; i < RUNS; i++) {
      bareRuns.push(
        await bareLoop(
          path.join(BENCH_DIR, 'onnx/model.onnx'),
          promptIds,
          node.bench?.tokens ?? TOKENS,
          config.num_hidden_layers,
          config.num_attention_heads,
          config.hidden_size / config.num_attention_heads,
        ),
      );
    }
    const bare = {
      tokensPerSecond: median(bareRuns.map((r) => r.tokensPerSecond)),
      ttftMs: median(bareRuns.map((r) => r.ttftMs)),
    };

    // Chromium (WASM, no GPU): the built worker bundle; the second load comes from the browser's cache.
    const browser = await launchChromium('no-gpu');
    const chromium: Record<string, { loadMs: number; ttftMs: number; tokensPerSecond: number }> = {};
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      for (const model of [nano, bench]) {
        await runWorker(page, workerPath, model, 'wasm', MESSAGES, { ...GREEDY, maxNewTokens: 2 });
        const runs = [];
        for (let i = 0; i < RUNS; i++) runs.push(await runWorker(page, workerPath, model, 'wasm', MESSAGES, GREEDY));
        const completes = runs.map((r) => (r.complete?.type === 'complete' ? r.complete : null));
        if (completes.some((c) => !c))
          throw new Error(`the worker failed: ${JSON.stringify(runs[0]?.complete ?? runs[0]?.ready)}`);
        chromium[model.id] = {
          loadMs: median(runs.map((r) => (r.ready.type === 'ready' ? r.ready.loadMs : NaN))),
          ttftMs: median(completes.map((c) => c?.ttftMs ?? 0)),
          tokensPerSecond: median(completes.map((c) => c?.tokensPerSecond ?? 0)),
        };
      }
    } finally {
      await browser.close();
    }

    const b = node.bench;
    console.log(
      `\nbenchmark model: ${config.num_hidden_layers} layers, width ${config.hidden_size}; ${b?.tokens} greedy tokens after a ${promptIds.length}-token prompt; median of ${RUNS}`,
    );
    console.log(
      `1. engine (Node) ${fmt(b?.tokensPerSecond ?? 0)} tok/s vs bare onnxruntime-node loop ${fmt(bare.tokensPerSecond)} tok/s: ratio ${fmt((b?.tokensPerSecond ?? 0) / bare.tokensPerSecond, 2)} (goal >= 0.9)`,
    );
    console.log(
      `2. Chromium WASM worker ${fmt(chromium.bench?.tokensPerSecond ?? 0)} tok/s vs engine in Node ${fmt(b?.tokensPerSecond ?? 0)} tok/s: ratio ${fmt((chromium.bench?.tokensPerSecond ?? 0) / (b?.tokensPerSecond ?? 1), 2)}`,
    );
    console.log('3. load from cache and time to first token (ms):');
    for (const model of ['nano-shakespeare', 'bench']) {
      const n = node[model];
      const c = chromium[model];
      console.log(
        `   ${model}: Node load ${fmt(n?.loadMs ?? 0, 0)}, TTFT ${fmt(n?.ttftMs ?? 0, 0)}, ${fmt(n?.tokensPerSecond ?? 0)} tok/s | Chromium WASM load ${fmt(c?.loadMs ?? 0, 0)}, TTFT ${fmt(c?.ttftMs ?? 0, 0)}, ${fmt(c?.tokensPerSecond ?? 0)} tok/s`,
      );
    }
    console.log(`   bare loop TTFT (prefill) ${fmt(bare.ttftMs, 0)} ms`);
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
