// Inference engine benchmarks (issue 4, section 4):
//   npx tsx bench/engine.ts            (BENCH_TOKENS=128 by default; BENCH_WASM_THREADS=2, 0 skips that row)
// 1. Engine overhead: the engine's decode tokens/s on the generated benchmark model vs a bare onnxruntime-node
//    session loop (same graph, same prompt ids, greedy, KV cache) in the same process.
// 2. Browser vs native: one long-lived worker (the built bundle) in headless Chromium (WASM), on the app's page with
//    its service worker controlling it and on a blank page, vs the engine in Node, same model; the first answer after
//    load apart from the steady state.
// 3. Time to first token and load time from cache, for the nano model and the benchmark model.
// 4. WebGPU on SwiftShader (Chromium's CPU implementation of WebGPU: its speed says nothing about a GPU): the same
//    greedy answer, checked token for token against the engine in Node, with its load time and tokens/s.
// Models load through the real server process (the benchmark model downloaded from the fake Hub by the proxy).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AutoTokenizer } from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import type { EngineModel } from '../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import type { Page } from 'playwright-core';
import { launchChromium, workerSession } from '../tests/support/browser.ts';
import { nanoEngineModel } from '../tests/support/model-fixtures.ts';
import { promptIds as chatPromptIds } from '../src/shared/chat-template.ts';
import { BENCH_DIR, BENCH_MESSAGES, serveBenchModel } from './bench-model.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
/** SwiftShader runs WebGPU on the CPU, slowly: a shorter answer is enough to check the tokens. */
const WEBGPU_TOKENS = Number(process.env.BENCH_WEBGPU_TOKENS ?? 16);
/** Answers per loaded model: the first after load is reported apart from the rest (steady state). */
const RUNS = 5;
/** ONNX Runtime Web threads for the extra WASM row (0 or 1: none), against Node held to as many. */
const WASM_THREADS = Number(process.env.BENCH_WASM_THREADS ?? 2);
const MESSAGES = BENCH_MESSAGES;
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: TOKENS };

interface Answer {
  ttftMs: number;
  tokensPerSecond: number;
}
interface BrowserFigures {
  /** ONNX Runtime Web's threads in use, as Ready reported them. */
  threads: number;
  loadMs: number;
  warmUpMs: number;
  first: Answer;
  steady: Answer;
}

/**
 * One worker kept in the page: a first load fills the browser's cache, a second worker loads from it (as a returning
 * visit does), then RUNS answers on that worker.
 */
async function browserFigures(
  page: Page,
  workerPath: string,
  model: EngineModel,
  threads?: number,
): Promise<BrowserFigures> {
  const filler = await workerSession(page, workerPath);
  await filler.load(model, 'wasm', threads);
  await filler.close();
  const session = await workerSession(page, workerPath);
  const ready = await session.load(model, 'wasm', threads);
  if (ready.type !== 'ready') throw new Error(`the worker could not load ${model.id}: ${ready.message}`);
  const answers: Answer[] = [];
  for (let i = 0; i < RUNS; i++) {
    const done = await session.generate(MESSAGES, GREEDY);
    if (done.type !== 'complete') throw new Error(`the worker failed: ${done.message}`);
    answers.push({ ttftMs: done.ttftMs, tokensPerSecond: done.tokensPerSecond });
  }
  await session.close();
  const steady = answers.slice(1);
  return {
    threads: ready.threads ?? 0,
    loadMs: ready.loadMs,
    warmUpMs: ready.warmUpMs,
    first: answers[0] ?? { ttftMs: 0, tokensPerSecond: 0 },
    steady: {
      ttftMs: median(steady.map((a) => a.ttftMs)),
      tokensPerSecond: median(steady.map((a) => a.tokensPerSecond)),
    },
  };
}

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

interface NodeFigures {
  loadMs: number;
  warmUpMs: number;
  ttftMs: number;
  tokensPerSecond: number;
  tokens: number;
  promptTokens: number;
  first: Answer;
  tokenIds: number[];
}

/** The engine in Node, loaded from its file cache (a first engine fills it), answering RUNS times. */
async function nodeFigures(serverUrl: string, dir: string, model: EngineModel, threads?: number): Promise<NodeFigures> {
  const options = { modelHost: `${serverUrl}/models/`, cacheDir: path.join(dir, 'node-cache'), threads };
  const filler = new InferenceEngine(options);
  await filler.load(model, 'auto', () => {});
  await filler.unload();
  const engine = new InferenceEngine(options);
  const info = await engine.load(model, 'auto', () => {});
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    await engine.reset();
    runs.push(await engine.generate(MESSAGES, GREEDY, () => {}));
  }
  await engine.unload();
  const last = runs.at(-1);
  const steady = runs.slice(1);
  return {
    loadMs: info.loadMs,
    warmUpMs: info.warmUpMs,
    first: { ttftMs: runs[0]?.ttftMs ?? 0, tokensPerSecond: runs[0]?.tokensPerSecond ?? 0 },
    ttftMs: median(steady.map((r) => r.ttftMs)),
    tokensPerSecond: median(steady.map((r) => r.tokensPerSecond)),
    tokens: last?.completionTokens ?? 0,
    promptTokens: last?.promptTokens ?? 0,
    tokenIds: last?.tokenIds ?? [],
  };
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-engine-'));
  const { server, workerPath, model: bench, stop } = await serveBenchModel(dir);
  try {
    const config = JSON.parse(await readFile(path.join(BENCH_DIR, 'config.json'), 'utf8')) as {
      num_hidden_layers: number;
      num_attention_heads: number;
      hidden_size: number;
    };
    const nano = await nanoEngineModel();

    // Node: first load fills the file cache; the second engine loads from it.
    const node: Record<string, NodeFigures> = {};
    for (const model of [nano, bench]) node[model.id] = await nodeFigures(server.url, dir, model);
    // ONNX Runtime Web runs one thread here (half of this machine's two cores); onnxruntime-node takes both. The same
    // engine held to one thread is the like-for-like figure for the browser.
    const nodeOneThread = await nodeFigures(server.url, dir, bench, 1);
    const nodeThreads = WASM_THREADS > 1 ? await nodeFigures(server.url, dir, bench, WASM_THREADS) : null;

    // Bare onnxruntime-node on the benchmark model's own file, same prompt ids, same number of tokens.
    const tokenizer = await AutoTokenizer.from_pretrained(bench.repo, { revision: bench.revision });
    const promptIds = chatPromptIds(tokenizer, MESSAGES);
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

    // Chromium (WASM, no GPU), what people get: one long-lived worker (the built bundle, as the app keeps one),
    // loaded from the browser's cache, answering RUNS times. On a blank same-origin page, and on the app's own page on
    // a returning visit (its service worker installed and controlling the page).
    const browser = await launchChromium('no-gpu');
    const chromium: Record<string, BrowserFigures> = {};
    try {
      for (const where of ['blank', 'app'] as const) {
        const context = await browser.newContext();
        const page = await context.newPage();
        if (where === 'app') {
          await page.goto(server.url);
          // The first visit installs the service worker (and its precache); the measured visit is the next one.
          await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
          await page.reload();
          if (!(await page.evaluate('navigator.serviceWorker.controller !== null')))
            throw new Error('the service worker does not control the returning visit');
        } else {
          await page.goto(`${server.url}/api/health`);
        }
        for (const model of [nano, bench]) {
          chromium[`${model.id}/${where}`] = await browserFigures(page, workerPath, model);
        }
        // What a device with twice the cores gets by default (ONNX Runtime Web takes half the cores): the app is
        // cross-origin isolated, so its worker may run more than one thread. A fresh worker (the count is fixed at
        // the runtime's start), on the same page.
        if (where === 'app' && WASM_THREADS > 1)
          chromium[`bench/app/threads`] = await browserFigures(page, workerPath, bench, WASM_THREADS);
        await context.close();
      }
    } finally {
      await browser.close();
    }

    // WebGPU on SwiftShader: correctness of that path (tokens equal Node's), not speed.
    const webgpu: Record<string, { loadMs: number; backend: string; tokensPerSecond: number; divergesAt: number }> = {};
    const gpuBrowser = await launchChromium('webgpu');
    try {
      const page = await (await gpuBrowser.newContext()).newPage();
      await page.goto(`${server.url}/api/health`);
      for (const model of [nano, bench]) {
        const session = await workerSession(page, workerPath);
        const ready = await session.load(model, 'webgpu');
        if (ready.type !== 'ready') throw new Error(`WebGPU could not load ${model.id}: ${ready.message}`);
        const done = await session.generate(MESSAGES, { ...GREEDY, maxNewTokens: WEBGPU_TOKENS });
        if (done.type !== 'complete') throw new Error(`WebGPU failed on ${model.id}: ${done.message}`);
        const expected = node[model.id]?.tokenIds.slice(0, WEBGPU_TOKENS) ?? [];
        const divergesAt = done.tokenIds.findIndex((id, i) => id !== expected[i]);
        webgpu[model.id] = {
          loadMs: ready.loadMs,
          backend: ready.backend,
          tokensPerSecond: done.tokensPerSecond,
          divergesAt: divergesAt === -1 && done.tokenIds.length !== expected.length ? done.tokenIds.length : divergesAt,
        };
        await session.close();
      }
    } finally {
      await gpuBrowser.close();
    }

    const b = node.bench;
    console.log(
      `\nbenchmark model: ${config.num_hidden_layers} layers, width ${config.hidden_size}; ${b?.tokens} greedy tokens after a ${promptIds.length}-token prompt; median of ${RUNS}`,
    );
    console.log(
      `1. engine (Node) ${fmt(b?.tokensPerSecond ?? 0)} tok/s vs bare onnxruntime-node loop ${fmt(bare.tokensPerSecond)} tok/s: ratio ${fmt((b?.tokensPerSecond ?? 0) / bare.tokensPerSecond, 2)} (goal >= 0.9)`,
    );
    const steadyNode = b?.tokensPerSecond ?? 0;
    const steadyOne = nodeOneThread.tokensPerSecond;
    console.log(
      `2. Chromium WASM, one long-lived worker (median of answers 2 to ${RUNS}) vs engine in Node ${fmt(steadyNode)} tok/s, or ${fmt(steadyOne)} tok/s held to one thread as ONNX Runtime Web is here (goal >= 0.8):`,
    );
    for (const where of ['app', 'blank'] as const) {
      const c = chromium[`bench/${where}`];
      const tps = c?.steady.tokensPerSecond ?? 0;
      console.log(
        `   ${where === 'app' ? 'app page, service worker controlling' : 'blank same-origin page'}: ${fmt(tps)} tok/s, ratio ${fmt(tps / (steadyNode || 1), 2)} (one thread each: ${fmt(tps / (steadyOne || 1), 2)}); first answer after load ${fmt(c?.first.tokensPerSecond ?? 0)} tok/s, TTFT ${fmt(c?.first.ttftMs ?? 0, 0)} ms (steady TTFT ${fmt(c?.steady.ttftMs ?? 0, 0)} ms)`,
      );
    }
    const threaded = chromium['bench/app/threads'];
    if (threaded && nodeThreads) {
      const tps = threaded.steady.tokensPerSecond;
      console.log(
        `   app page, ${WASM_THREADS} ONNX Runtime Web threads asked (${threaded.threads} in use; the default on a ${2 * WASM_THREADS}-core device): ${fmt(tps)} tok/s, ratio to Node held to ${WASM_THREADS} threads (${fmt(nodeThreads.tokensPerSecond)} tok/s): ${fmt(tps / (nodeThreads.tokensPerSecond || 1), 2)}; first answer after load ${fmt(threaded.first.tokensPerSecond)} tok/s, TTFT ${fmt(threaded.first.ttftMs, 0)} ms`,
      );
    }
    console.log('3. load from cache (of which the warm-up run), first answer after load and steady state (ms, tok/s):');
    for (const model of ['nano-shakespeare', 'bench']) {
      const n = node[model];
      const c = chromium[`${model}/app`];
      console.log(
        `   ${model}: Node load ${fmt(n?.loadMs ?? 0, 0)} (${fmt(n?.warmUpMs ?? 0, 0)}), first TTFT ${fmt(n?.first.ttftMs ?? 0, 0)} ${fmt(n?.first.tokensPerSecond ?? 0)} tok/s, steady TTFT ${fmt(n?.ttftMs ?? 0, 0)} ${fmt(n?.tokensPerSecond ?? 0)} tok/s | Chromium WASM (app page) load ${fmt(c?.loadMs ?? 0, 0)} (${fmt(c?.warmUpMs ?? 0, 0)}), first TTFT ${fmt(c?.first.ttftMs ?? 0, 0)} ${fmt(c?.first.tokensPerSecond ?? 0)} tok/s, steady TTFT ${fmt(c?.steady.ttftMs ?? 0, 0)} ${fmt(c?.steady.tokensPerSecond ?? 0)} tok/s`,
      );
    }
    console.log(`   bare loop TTFT (prefill) ${fmt(bare.ttftMs, 0)} ms`);
    console.log(`4. WebGPU on SwiftShader (CPU-emulated: correctness, not speed), ${WEBGPU_TOKENS} greedy tokens:`);
    for (const [model, w] of Object.entries(webgpu)) {
      console.log(
        `   ${model}: backend ${w.backend}, load ${fmt(w.loadMs, 0)} ms, ${fmt(w.tokensPerSecond)} tok/s, tokens ${w.divergesAt === -1 ? 'equal to Node' : `differ from Node at token ${w.divergesAt}`}`,
      );
    }
  } finally {
    await stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
