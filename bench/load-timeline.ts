// Where a worker's load of the nano model goes (issue 19): each load's progress messages and the worker's resource
// timings, for one or more built clients served side by side and loaded in turn (A/B in the same minutes).
//   npx tsx bench/load-timeline.ts [DIST ...]   (PROBE_LOADS=3, PROBE_WHERE=blank,app, PROBE_VERBOSE=1 for the timelines)
// Each DIST is a built client (`vite build --outDir DIST`, e.g. of an older commit's worktree); without one, this
// tree's build. Every load is a fresh worker in the same page, after a first load has filled the browser's caches.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import type { EngineModel, EngineReply } from '../src/shared/engine-protocol.ts';
import { buildClient, launchChromium } from '../tests/support/browser.ts';
import { nanoEngineModel } from '../tests/support/model-fixtures.ts';
import { startServer } from '../tests/support/server-process.ts';

const LOADS = Number(process.env.PROBE_LOADS ?? 3);
const WHERE = (process.env.PROBE_WHERE ?? 'blank,app').split(',');

interface PageWorker {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: { data: EngineReply }) => void): void;
  terminate(): void;
}

/** One fresh worker loading `model` on WASM: its Ready, its progress as `ms phase: message`, its resource timings. */
async function oneLoad(page: Page, workerPath: string, model: EngineModel) {
  await page.evaluate('globalThis.__name ??= (fn) => fn');
  const before = page.workers().length;
  // The page's own main-thread work meanwhile (the app's, on the app page): CPU time, which load on the machine
  // stretches much less than wall time.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const taskSeconds = async () =>
    (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration')?.value ?? 0;
  const tasksBefore = await taskSeconds();
  const pageResourcesBefore = await page.evaluate(() => performance.getEntriesByType('resource').length);
  const result = await page.evaluate(
    async ({ workerPath, model }) => {
      const scope = globalThis as unknown as {
        Worker: new (url: string, options: { type: 'module' }) => PageWorker;
        __timelineWorker?: PageWorker;
      };
      const t0 = performance.now();
      const worker = new scope.Worker(workerPath, { type: 'module' });
      scope.__timelineWorker = worker;
      const events: string[] = [];
      const ready = await new Promise<EngineReply>((resolve) => {
        worker.addEventListener('message', ({ data }) => {
          const at = Math.round(performance.now() - t0);
          events.push(data.type === 'progress' ? `${at} ${data.phase}: ${data.message}` : `${at} ${data.type}`);
          if (data.type === 'ready' || data.type === 'error') resolve(data);
        });
        worker.postMessage({ type: 'load', requestId: 'load', model, backend: 'wasm' });
      });
      return { ready, events, totalMs: Math.round(performance.now() - t0) };
    },
    { workerPath, model },
  );
  const worker = page.workers()[before] ?? page.workers().at(-1);
  const resources = worker
    ? await worker.evaluate(() =>
        performance.getEntriesByType('resource').map((entry) => {
          // Runs in the worker (the benchmarks' tsconfig has no DOM types, hence the local shape).
          const e = entry as unknown as {
            name: string;
            startTime: number;
            duration: number;
            transferSize: number;
            decodedBodySize: number;
            deliveryType?: string;
          };
          const file = e.name.replace(/^https?:\/\/[^/]+/, '').replace(/\/resolve\/[0-9a-f]{40}\//, '/…/');
          return `${Math.round(e.startTime)} +${Math.round(e.duration)} ms ${file} (${e.transferSize} B over the wire, ${e.decodedBodySize} B, ${e.deliveryType || 'network'})`;
        }),
      )
    : [];
  const pageTaskMs = Math.round(((await taskSeconds()) - tasksBefore) * 1000);
  const pageRequests =
    (await page.evaluate(() => performance.getEntriesByType('resource').length)) - pageResourcesBefore;
  await cdp.detach();
  await page.evaluate(() => (globalThis as { __timelineWorker?: PageWorker }).__timelineWorker?.terminate());
  return { ...result, resources, pageTaskMs, pageRequests };
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-load-timeline-'));
  const dists = process.argv.slice(2);
  if (dists.length === 0) {
    await buildClient(path.join(dir, 'dist'));
    dists.push(path.join(dir, 'dist'));
  }
  const model = await nanoEngineModel();
  const browser = await launchChromium('no-gpu');
  const servers = [];
  try {
    for (const [i, dist] of dists.entries()) {
      const worker = (await readdir(path.join(dist, 'assets'))).find((f) => /^inference\.worker-.*\.js$/.test(f));
      if (!worker) throw new Error(`${dist} has no inference worker bundle`);
      const server = await startServer({ DATA_DIR: path.join(dir, `data-${i}`), CLIENT_DIST_DIR: dist }, 240_000);
      servers.push({ dist, server, workerPath: `/assets/${worker}` });
    }
    for (const where of WHERE) {
      const pages = [];
      for (const s of servers) {
        const context = await browser.newContext();
        const page = await context.newPage();
        if (where === 'app') {
          // A returning visit: the first one installs the service worker, which then controls the page.
          await page.goto(s.server.url);
          await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
          await page.reload();
        } else {
          await page.goto(`${s.server.url}/api/health`);
        }
        // A first load fills the browser's caches; the loads reported come after it.
        await oneLoad(page, s.workerPath, model);
        pages.push({ ...s, page, context });
      }
      for (let i = 0; i < LOADS; i++) {
        for (const p of pages) {
          const r = await oneLoad(p.page, p.workerPath, model);
          const ready = r.ready.type === 'ready' ? r.ready : null;
          console.log(
            `${p.dist} ${where} load ${i + 1}: ${ready ? `loadMs ${ready.loadMs} (warm-up ${ready.warmUpMs ?? 'none'})` : 'failed'}, from new Worker to Ready ${r.totalMs} ms; the page meanwhile: ${r.pageTaskMs} ms of tasks, ${r.pageRequests} requests; load average ${loadavg()[0]?.toFixed(1)}`,
          );
          if (process.env.PROBE_VERBOSE) {
            for (const e of r.events) console.log(`    ${e}`);
            for (const e of r.resources) console.log(`    ${e}`);
          }
        }
      }
      for (const p of pages) await p.context.close();
    }
  } finally {
    await browser.close();
    for (const s of servers) {
      s.server.child.kill('SIGTERM');
      await s.server.exited;
    }
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
