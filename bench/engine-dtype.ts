// Browser vs native per weight format (issue 19): the benchmark model's shape (bench/engine.ts) written as fp32
// (model.onnx), q8 (model_quantized.onnx: int8 weights, activations quantised per call, MatMulInteger) and q4
// (model_q4.onnx: MatMulNBits), each decoded greedily by the engine in Node (onnxruntime-node) and by the built
// worker in headless Chromium (WASM, one long-lived worker on a blank same-origin page), in turn, round after round,
// so that the ratios compare runs of the same minutes on a machine shared with other work.
//   npx tsx bench/engine-dtype.ts      (BENCH_TOKENS=128, BENCH_FORMATS=fp32,q8,q4, BENCH_ROUNDS=2)
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeHub } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { GRAPH_FILE, type PlainFormat } from '../scripts/tiny-model/write-model.ts';
import type { EngineMessage, EngineModel } from '../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { buildClient, launchChromium, workerSession } from '../tests/support/browser.ts';
import { publishModels } from '../tests/support/model-fixtures.ts';
import { downloadModel, signUpCookie, startServer } from '../tests/support/server-process.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const FORMATS = (process.env.BENCH_FORMATS ?? 'fp32,q8,q4').split(',').map((f) => {
  if (!Object.hasOwn(GRAPH_FILE, f)) throw new Error(`BENCH_FORMATS: ${f} is not one of ${Object.keys(GRAPH_FILE)}`);
  return f as PlainFormat;
});
/** Answers per loaded model and round: the first after load is left out (steady state). */
const RUNS = 4;
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const BENCH_DIR = process.env.BENCH_MODEL_DIR ?? '/tmp/models/mesh/bench';
const MESSAGES: EngineMessage[] = [
  { role: 'user', content: 'Write a long story about a mesh of browsers sharing one small model.' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: TOKENS };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function nodeSteady(serverUrl: string, dir: string, model: EngineModel) {
  const engine = new InferenceEngine({ modelHost: `${serverUrl}/models/`, cacheDir: path.join(dir, 'node-cache') });
  await engine.load(model, 'auto', () => {});
  const speeds: number[] = [];
  let tokenIds: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await engine.reset();
    const result = await engine.generate(MESSAGES, GREEDY, () => {});
    if (i > 0) speeds.push(result.tokensPerSecond);
    tokenIds = result.tokenIds;
  }
  await engine.unload();
  return { tokensPerSecond: median(speeds), tokenIds };
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-dtype-'));
  const hub = new FakeHub();
  await hub.start();
  const sources = [];
  for (const format of FORMATS) {
    // fp32 is bench/engine.ts' benchmark model itself.
    const from = format === 'fp32' ? BENCH_DIR : `${BENCH_DIR}-${format}`;
    if (!existsSync(path.join(from, GRAPH_FILE[format]))) {
      console.log(`generating the benchmark model as ${format} into ${from} ...`);
      await generateRandomModel(from, { ...BENCH, format });
    }
    sources.push({ id: `bench-${format}`, from, format, contextLength: BENCH.maxPositions });
  }
  const { manifestPath, published } = await publishModels(hub, dir, sources);
  const { workerPath } = await buildClient(path.join(dir, 'dist'));
  const server = await startServer(
    {
      DATA_DIR: path.join(dir, 'data'),
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: manifestPath,
      CLIENT_DIST_DIR: path.join(dir, 'dist'),
    },
    240_000,
  );
  const browser = await launchChromium('no-gpu');
  try {
    const cookie = await signUpCookie(server.url, 'bench');
    for (const { id } of sources) await downloadModel(server.url, cookie, id);
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/api/health`);
    const rows: Record<string, { node: number[]; wasm: number[]; sameTokens: boolean[] }> = {};
    for (let round = 1; round <= ROUNDS; round++) {
      for (const format of FORMATS) {
        const model = published[`bench-${format}`]?.model;
        if (!model) throw new Error(`bench-${format} was not published`);
        const node = await nodeSteady(server.url, dir, model);
        const session = await workerSession(page, workerPath);
        const ready = await session.load(model, 'wasm');
        if (ready.type !== 'ready') throw new Error(`the worker could not load ${model.id}: ${ready.message}`);
        const speeds: number[] = [];
        let tokenIds: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          const done = await session.generate(MESSAGES, GREEDY);
          if (done.type !== 'complete') throw new Error(`the worker failed: ${done.message}`);
          if (i > 0) speeds.push(done.tokensPerSecond);
          tokenIds = done.tokenIds;
        }
        await session.close();
        const wasm = median(speeds);
        const row = (rows[format] ??= { node: [], wasm: [], sameTokens: [] });
        row.node.push(node.tokensPerSecond);
        row.wasm.push(wasm);
        row.sameTokens.push(
          tokenIds.length === node.tokenIds.length && tokenIds.every((t, i) => t === node.tokenIds[i]),
        );
        console.log(
          `round ${round} ${format}: Node ${node.tokensPerSecond.toFixed(1)} tok/s, Chromium WASM ${wasm.toFixed(1)} tok/s, ratio ${(wasm / node.tokensPerSecond).toFixed(2)}`,
        );
      }
    }
    console.log(
      `\nbenchmark model's shape (${BENCH.layers} layers, width ${BENCH.hidden}), ${TOKENS} greedy tokens, answers 2 to ${RUNS} of each load:`,
    );
    for (const format of FORMATS) {
      const row = rows[format];
      if (!row) continue;
      const ratios = row.wasm.map((w, i) => (w / (row.node[i] ?? 1)).toFixed(2));
      console.log(
        `  ${format}: Node ${row.node.map((n) => n.toFixed(1)).join(' / ')} tok/s, Chromium WASM ${row.wasm.map((w) => w.toFixed(1)).join(' / ')} tok/s, ratio ${ratios.join(' / ')}; tokens equal: ${row.sameTokens.join(' / ')}`,
      );
    }
  } finally {
    await browser.close();
    server.child.kill('SIGTERM');
    await server.exited;
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
