// PWA benchmarks (issue 5):
//   npx tsx bench/pwa.ts
// 1. Initial JavaScript before the first paint (gzip): the scripts index.html loads, not the lazily loaded chunks
//    (markdown), the inference worker or ONNX Runtime.
// 2. Navigation to an interactive chat with the nano model (navigation start → Load clicked as soon as it shows →
//    Ready), cold (a fresh browser profile) vs warm (the same profile: service worker, model on the device); and
//    reload-to-Ready while offline. Median of RUNS.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { buildClient, launchChromium } from '../tests/support/browser.ts';
import { startServer } from '../tests/support/server-process.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function initialJs(dist: string) {
  const html = await readFile(path.join(dist, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/<(?:script[^>]*src|link[^>]*rel="modulepreload"[^>]*href)="([^"]+\.js)"/g)].map((m) => m[1] ?? '');
  let raw = 0;
  let gzip = 0;
  for (const src of scripts) {
    const bytes = await readFile(path.join(dist, src));
    raw += bytes.length;
    gzip += gzipSync(bytes).length;
  }
  return { scripts, raw, gzip };
}

/** Navigation to Ready: goto, click the nano model's Load as soon as it is there, wait for the backend badge. */
async function toReady(page: Page, url: string, reload = false): Promise<number> {
  const started = performance.now();
  if (reload) await page.reload();
  else await page.goto(url);
  const card = page.locator('[data-testid="model-card"][data-model-id="nano-shakespeare"]');
  await card.getByTestId('model-load').click({ timeout: 60_000 });
  await card.getByTestId('backend-badge').waitFor({ timeout: 60_000 });
  return performance.now() - started;
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-pwa-'));
  const dist = path.join(dir, 'dist');
  await buildClient(dist, 'bench');
  const js = await initialJs(dist);
  const server = await startServer({ DATA_DIR: path.join(dir, 'data'), CLIENT_DIST_DIR: dist });
  let browser: Browser | null = null;
  try {
    browser = await launchChromium('no-gpu');
    const url = `${server.url}/models`;
    const cold: number[] = [];
    const warm: number[] = [];
    const offline: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      cold.push(await toReady(page, url));
      await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
      warm.push(await toReady(page, url));
      await context.setOffline(true);
      offline.push(await toReady(page, url, true));
      await context.close();
    }
    console.log(`1. initial JavaScript: ${(js.gzip / 1024).toFixed(1)} KiB gzip (${(js.raw / 1024).toFixed(1)} KiB raw) in ${js.scripts.join(', ')} (goal < 200 KB)`);
    console.log(
      `2. navigation to a Ready nano model, median of ${RUNS}: cold ${median(cold).toFixed(0)} ms, warm ${median(warm).toFixed(0)} ms (warm/cold ${(median(warm) / median(cold)).toFixed(2)}), offline reload ${median(offline).toFixed(0)} ms`,
    );
    console.log(`   runs: cold ${cold.map((v) => v.toFixed(0)).join(', ')}; warm ${warm.map((v) => v.toFixed(0)).join(', ')}; offline ${offline.map((v) => v.toFixed(0)).join(', ')}`);
  } finally {
    await browser?.close();
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
