// The first answer after a load (issue 19): why it is slower than the next ones, and whether a warm-up pays.
//   npx tsx bench/first-answer.ts [DIST ...]
//   PROBE_ROUNDS=3, PROBE_ANSWERS=4, PROBE_MODEL=bench (or nano), PROBE_JS_FLAGS='' (flag sets for V8, split by |,
//   e.g. '|--no-wasm-dynamic-tiering': each set is a Chromium of its own, '' its defaults), PROBE_PAUSE_MS=0 (a wait
//   between Ready and the first question, as a person typing it; not counted in the total below),
//   PROBE_PROFILE=incognito (or persistent: a profile on disk, as a person's browser has, where Chromium keeps
//   compiled WebAssembly between workers; the filler worker then also answers once, so that code is optimised first)
// Each DIST is a built client (`vite build --outDir DIST`, e.g. with another warm-up); without one, this tree's build.
// Per round, per flag set, per DIST in turn (A/B in the same minutes): a fresh worker on the app's page (a returning
// visit, the service worker controlling it) loads the model from the browser's caches, then answers PROBE_ANSWERS
// times (greedy, the prompt of bench/engine.ts). Printed: load (of which the warm-up), each answer's TTFT and tok/s,
// and `new Worker` to the first answer's end, the figure a warm-up must not make worse.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { FakeHub } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import type { EngineMessage, EngineModel } from '../src/shared/engine-protocol.ts';
import { buildClient, launchChromium, launchPersistentChromium, workerSession } from '../tests/support/browser.ts';
import { nanoEngineModel, publishModels } from '../tests/support/model-fixtures.ts';
import { downloadModel, signUpCookie, startServer } from '../tests/support/server-process.ts';

const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 3);
const ANSWERS = Number(process.env.PROBE_ANSWERS ?? 4);
const MODEL = process.env.PROBE_MODEL ?? 'bench';
const FLAG_SETS = (process.env.PROBE_JS_FLAGS ?? '').split('|');
const PAUSE_MS = Number(process.env.PROBE_PAUSE_MS ?? 0);
const PERSISTENT = process.env.PROBE_PROFILE === 'persistent';
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const BENCH_DIR = process.env.BENCH_MODEL_DIR ?? '/tmp/models/mesh/bench';
const MESSAGES: EngineMessage[] = [
  { role: 'user', content: 'Write a long story about a mesh of browsers sharing one small model.' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: Number(process.env.BENCH_TOKENS ?? 128) };

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-first-answer-'));
  const dists = process.argv.slice(2);
  if (dists.length === 0) {
    await buildClient(path.join(dir, 'dist'));
    dists.push(path.join(dir, 'dist'));
  }
  const hub = new FakeHub();
  await hub.start();
  const servers = [];
  try {
    let model: EngineModel;
    let manifest: Record<string, string> = {};
    if (MODEL === 'nano') {
      model = await nanoEngineModel();
    } else {
      if (!existsSync(path.join(BENCH_DIR, 'onnx/model.onnx'))) await generateRandomModel(BENCH_DIR, BENCH);
      const { manifestPath, published } = await publishModels(hub, dir, [
        { id: 'bench', from: BENCH_DIR, contextLength: BENCH.maxPositions },
      ]);
      if (!published.bench) throw new Error('the benchmark model was not published');
      model = published.bench.model;
      manifest = { HF_ENDPOINT: hub.origin, MANIFEST_PATH: manifestPath };
    }
    for (const [i, dist] of dists.entries()) {
      const worker = (await readdir(path.join(dist, 'assets'))).find((f) => /^inference\.worker-.*\.js$/.test(f));
      if (!worker) throw new Error(`${dist} has no inference worker bundle`);
      const server = await startServer({ DATA_DIR: path.join(dir, `data-${i}`), CLIENT_DIST_DIR: dist, ...manifest });
      if (MODEL !== 'nano') await downloadModel(server.url, await signUpCookie(server.url, `fa${i}`), model.id);
      servers.push({ dist, server, workerPath: `/assets/${worker}` });
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const flags of FLAG_SETS) {
        const args = flags ? [`--js-flags=${flags}`] : [];
        const browser = PERSISTENT ? null : await launchChromium('no-gpu', args);
        try {
          for (const [i, s] of servers.entries()) {
            const context = browser
              ? await browser.newContext()
              : // (V8 flags apply to the incognito Chromium only.)
                await launchPersistentChromium(path.join(dir, `profile-${round}-${i}`), 'no-gpu');
            const page = await context.newPage();
            await page.goto(s.server.url);
            await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
            await page.reload();
            // A first load fills the caches (service worker, HTTP, compiled code); the one measured comes after it.
            const filler = await workerSession(page, s.workerPath);
            await filler.load(model, 'wasm');
            if (PERSISTENT) await filler.generate(MESSAGES, GREEDY);
            await filler.close();
            const session = await workerSession(page, s.workerPath);
            const t0 = Date.now();
            const ready = await session.load(model, 'wasm');
            if (ready.type !== 'ready') throw new Error(`no load: ${ready.message}`);
            const readyAt = Date.now() - t0;
            await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
            const answers: string[] = [];
            let firstDone = 0;
            for (let i = 0; i < ANSWERS; i++) {
              const done = await session.generate(MESSAGES, GREEDY);
              if (done.type !== 'complete') throw new Error(`no answer: ${done.message}`);
              firstDone ||= Date.now() - t0 - PAUSE_MS;
              answers.push(`${Math.round(done.ttftMs)} ms ${done.tokensPerSecond.toFixed(1)}/s`);
            }
            await session.close();
            await context.close();
            console.log(
              `round ${round} [${flags || 'defaults'}${PERSISTENT ? ', persistent profile' : ''}] ${s.dist}: load ${ready.loadMs} ms (warm-up ${ready.warmUpMs}, new Worker to Ready ${readyAt} ms), answers (TTFT, tok/s) ${answers.join(' | ')}; new Worker to first answer done ${firstDone} ms${PAUSE_MS ? ` (less the ${PAUSE_MS} ms pause)` : ''}; load average ${loadavg()[0]?.toFixed(1)}`,
            );
          }
        } finally {
          await browser?.close();
        }
      }
    }
  } finally {
    for (const s of servers) {
      s.server.child.kill('SIGTERM');
      await s.server.exited;
    }
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
