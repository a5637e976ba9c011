// PWA benchmarks (issue 5):
//   npx tsx bench/pwa.ts
// 1. Initial JavaScript before the first paint (gzip): the scripts index.html loads, not the lazily loaded chunks
//    (markdown), the inference worker or ONNX Runtime.
// 2. Navigation to an interactive chat with the nano model (navigation start → Load clicked as soon as it shows →
//    Ready), cold (a fresh browser profile) vs warm (the same profile: service worker, model on the device, which
//    now loads by itself as the app opens); and reload-to-Ready while offline. Median of RUNS.
// 3. Offline from the first visit (issue 12), with a persistent profile as a person's browser keeps it: first visit
//    to Ready (navigation → Chat's "Load the demo model" → Ready), then, with the browser closed, the server stopped
//    and the network off, reopening to Ready (the last model loads by itself) and to the first token of an answer.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { buildClient, launchChromium, launchPersistentChromium } from '../tests/support/browser.ts';
import { freePort, startServer } from '../tests/support/server-process.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function initialJs(dist: string) {
  const html = await readFile(path.join(dist, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/<(?:script[^>]*src|link[^>]*rel="modulepreload"[^>]*href)="([^"]+\.js)"/g)].map(
    (m) => m[1] ?? '',
  );
  let raw = 0;
  let gzip = 0;
  for (const src of scripts) {
    const bytes = await readFile(path.join(dist, src));
    raw += bytes.length;
    gzip += gzipSync(bytes).length;
  }
  return { scripts, raw, gzip };
}

/**
 * Navigation to Ready: goto (or reload), click the nano model's Load as soon as it is there (`click`) or let the app
 * load the last model by itself (`restore`), wait for the backend badge.
 */
async function toReady(page: Page, url: string, how: 'click' | 'restore', reload = false): Promise<number> {
  const started = performance.now();
  if (reload) await page.reload();
  else await page.goto(url);
  const card = page.locator('[data-testid="model-card"][data-model-id="nano-shakespeare"]');
  if (how === 'click') await card.getByTestId('model-load').click({ timeout: 60_000 });
  await card.getByTestId('backend-badge').waitFor({ timeout: 60_000 });
  return performance.now() - started;
}

/** (3): one fresh persistent profile; the server is stopped for the offline part and started again after it. */
async function offlineFromFirstVisit(dir: string, dist: string, run: number) {
  const env = { DATA_DIR: path.join(dir, `data-3-${run}`), CLIENT_DIST_DIR: dist, PORT: String(await freePort()) };
  const profile = path.join(dir, `profile-${run}`);
  const server = await startServer(env);
  const first = await launchPersistentChromium(profile, 'no-gpu');
  const page = first.pages()[0] ?? (await first.newPage());
  let started = performance.now();
  await page.goto(`${server.url}/`);
  await page.getByTestId('chat-load-demo').click({ timeout: 60_000 });
  await page.getByTestId('backend-badge').waitFor({ timeout: 60_000 });
  const firstVisit = performance.now() - started;
  await page.locator('[data-testid="offline-ready"][data-state="kept"]').waitFor({ timeout: 60_000 });
  await first.close();
  const origin = server.url;
  server.child.kill('SIGTERM');
  await server.exited;

  const reopened = await launchPersistentChromium(profile, 'no-gpu', { offline: true });
  const again = reopened.pages()[0] ?? (await reopened.newPage());
  started = performance.now();
  await again.goto(`${origin}/`);
  await again.getByTestId('backend-badge').waitFor({ timeout: 60_000 });
  const reopenReady = performance.now() - started;
  await again.getByTestId('chat-input').fill('Good morrow');
  await again.getByTestId('chat-send').click();
  // The first token: the answer's text is no longer empty.
  await again.getByTestId('chat-message-assistant').filter({ hasText: /\S/ }).first().waitFor({ timeout: 60_000 });
  const reopenToken = performance.now() - started;
  await reopened.close();
  return { firstVisit, reopenReady, reopenToken };
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
      cold.push(await toReady(page, url, 'click'));
      await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
      warm.push(await toReady(page, url, 'restore'));
      await context.setOffline(true);
      offline.push(await toReady(page, url, 'restore', true));
      await context.close();
    }
    const firstVisit: number[] = [];
    const reopenReady: number[] = [];
    const reopenToken: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const result = await offlineFromFirstVisit(dir, dist, run);
      firstVisit.push(result.firstVisit);
      reopenReady.push(result.reopenReady);
      reopenToken.push(result.reopenToken);
    }
    console.log(
      `1. initial JavaScript: ${(js.gzip / 1024).toFixed(1)} KiB gzip (${(js.raw / 1024).toFixed(1)} KiB raw) in ${js.scripts.join(', ')} (goal < 200 KB)`,
    );
    console.log(
      `2. navigation to a Ready nano model, median of ${RUNS}: cold ${median(cold).toFixed(0)} ms, warm ${median(warm).toFixed(0)} ms (warm/cold ${(median(warm) / median(cold)).toFixed(2)}), offline reload ${median(offline).toFixed(0)} ms`,
    );
    console.log(
      `   runs: cold ${cold.map((v) => v.toFixed(0)).join(', ')}; warm ${warm.map((v) => v.toFixed(0)).join(', ')}; offline ${offline.map((v) => v.toFixed(0)).join(', ')}`,
    );
    console.log(
      `3. offline from the first visit, median of ${RUNS}: first visit → Ready ${median(firstVisit).toFixed(0)} ms; reopened offline (server stopped) → Ready ${median(reopenReady).toFixed(0)} ms (reopen/first visit ${(median(reopenReady) / median(firstVisit)).toFixed(2)}), → first token ${median(reopenToken).toFixed(0)} ms`,
    );
    console.log(
      `   runs: first visit ${firstVisit.map((v) => v.toFixed(0)).join(', ')}; reopen → Ready ${reopenReady.map((v) => v.toFixed(0)).join(', ')}; → first token ${reopenToken.map((v) => v.toFixed(0)).join(', ')}`,
    );
  } finally {
    await browser?.close();
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
