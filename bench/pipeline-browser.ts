// Browser stages (issue 18, docs/pipeline.md "Browser stages"): decode tokens/s on WASM in headless Chromium of
//   - the whole model in the inference worker's engine (transformers.js on onnxruntime-web), what a browser peer
//     runs today;
//   - the whole model as one browser stage (`onnx/whole.stages.json`), the stage runtime's own cost;
//   - 2 browser stages, both in the same worker, chained on the page over in-memory wires.
//   npx tsx bench/pipeline-browser.ts        (BENCH_TOKENS=64)
// The model is bench/pipeline.ts's (8 layers, width 512, 1024 positions), published on a fake Hub with its stage
// files, downloaded by a real server and fetched by the page through its /models/ proxy.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { FakeHub } from '../scripts/fake-hub.ts';
import { rng } from '../scripts/tiny-model/weights.ts';
import { buildClient, launchChromium, workerSession } from '../tests/support/browser.ts';
import type { PageStages } from '../tests/support/pipeline-page.ts';
import { type ServerProcess, downloadModel, signUpCookie, startServer } from '../tests/support/server-process.ts';
import { publishStagedModel, stagePageBundle } from '../tests/support/stage-fixtures.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
const RUNS = 3;
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const next = rng(7);
const ids = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(next() * 256));

const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-pipeline-browser-'));
const hub = new FakeHub();
let server: ServerProcess | null = null;
let browser: Browser | null = null;
try {
  await hub.start();
  const staged = await publishStagedModel(hub, dir, 'bench-staged', BENCH, [2]);
  const { workerPath } = await buildClient(path.join(dir, 'dist'));
  server = await startServer(
    {
      DATA_DIR: path.join(dir, 'data'),
      CLIENT_DIST_DIR: path.join(dir, 'dist'),
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: staged.manifestPath,
    },
    180_000,
  );
  await downloadModel(server.url, await signUpCookie(server.url, 'bench'), 'bench-staged');
  browser = await launchChromium('no-gpu');
  const page: Page = await (await browser.newContext({ bypassCSP: true })).newPage();
  await page.goto(`${server.url}/api/health`);
  await page.evaluate('globalThis.__name ??= (fn) => fn');
  await page.addScriptTag({ type: 'module', content: await stagePageBundle() });
  await page.waitForFunction(() => 'meshStages' in globalThis);

  // The engine on the whole model, as bench/engine.ts measures it.
  const engine = await workerSession(page, workerPath);
  const ready = await engine.load(staged.model, 'wasm');
  if (ready.type !== 'ready') throw new Error(`engine load: ${JSON.stringify(ready)}`);
  const prompt = [{ role: 'user' as const, content: 'Tell me a long story about the sea and the ships upon it.' }];
  const sampling = { temperature: 0, topP: 1, maxNewTokens: TOKENS };
  await engine.generate(prompt, { ...sampling, maxNewTokens: 8 });
  const engineRates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const done = await engine.generate(prompt, sampling);
    if (done.type !== 'complete') throw new Error(`engine generate: ${JSON.stringify(done)}`);
    engineRates.push(done.tokensPerSecond);
  }
  await engine.close();

  const stages = async (count: 1 | 2) => {
    await page.evaluate((o) => (globalThis as unknown as { meshStages: PageStages }).meshStages.open(o), {
      workerPath,
      model: { repo: staged.model.repo, revision: staged.model.revision },
      manifest: staged.manifests[count]!,
      count,
      backend: 'wasm' as const,
    });
    const job = { maxNewTokens: TOKENS, eos: [], temperature: 0, topP: 1, seed: 0 };
    const run = (maxNewTokens: number) =>
      page.evaluate((j) => (globalThis as unknown as { meshStages: PageStages }).meshStages.generate([j]), {
        ...job,
        prompt: ids(32),
        maxNewTokens,
      });
    await run(8);
    const rates: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const [result] = await run(TOKENS);
      if (!result) throw new Error('no result');
      rates.push(((result.tokens.length - 1) * 1000) / (result.ms - result.firstMs));
    }
    return rates;
  };
  const one = await stages(1);
  const two = await stages(2);
  await page.evaluate(() => (globalThis as unknown as { meshStages: PageStages }).meshStages.close());

  const row = (name: string, rates: number[]) =>
    `| ${name} | ${median(rates).toFixed(1)} | ${(1000 / median(rates)).toFixed(1)} | ${rates.map((r) => r.toFixed(1)).join(', ')} |`;
  console.log(`decode, WASM, greedy, 32-token prompt, ${TOKENS} new tokens, medians of ${RUNS} after a warm-up`);
  console.log('| runs | tok/s | ms/token | each run |');
  console.log('|---|---|---|---|');
  console.log(row('whole model, engine (transformers.js)', engineRates));
  console.log(row('whole model as 1 browser stage', one));
  console.log(row('2 browser stages, in-memory wires', two));
} finally {
  await browser?.close();
  server?.child.kill('SIGTERM');
  await server?.exited;
  await hub.stop();
  await rm(dir, { recursive: true, force: true });
}
