// The inference worker in headless Chromium, loading the bundled nano model from the server's /models route and
// ONNX Runtime from the app's own files: WASM and WebGPU (SwiftShader) give the greedy tokens the engine gives in
// Node, and a WebGPU load that fails falls back to WASM. (The app around it: tests/e2e/pwa.test.ts.)
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineMessage, EngineModel, Sampling } from '../../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../../src/worker/engine.ts';
import { FakeHub } from '../../scripts/fake-hub.ts';
import { useAppServer } from '../support/app-server.ts';
import { launchChromium, runWorker, workerSession } from '../support/browser.ts';
import { nanoEngineModel, publishModels } from '../support/model-fixtures.ts';
import { downloadModel, signUpCookie } from '../support/server-process.ts';

const MESSAGES: EngineMessage[] = [{ role: 'user', content: 'Now is the winter of our discontent' }];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 24 };

const hub = new FakeHub();
/**
 * Wide enough that its KV outputs pass 64 KiB from position 32 (2 KiB a position each), where ONNX Runtime's outputs
 * come from reused memory (src/worker/output-arrays.ts); the nano model's pass it only from position 128.
 */
const WIDE = { layers: 2, hidden: 512, heads: 8, seed: 3, maxPositions: 256 };
let wide: EngineModel;
const app = useAppServer({
  name: 'engine',
  browser: 'none',
  services: [hub],
  async env(dir) {
    const { manifestPath, published } = await publishModels(hub, dir, [{ id: 'engine-wide', options: WIDE }]);
    wide = published['engine-wide']!.model;
    return { HF_ENDPOINT: hub.origin, MANIFEST_PATH: manifestPath };
  },
});
let nano: EngineModel;
let nodeTokens: number[];
const browsers: Browser[] = [];

beforeAll(async () => {
  nano = await nanoEngineModel();
  // The same engine in Node, through the same server: the browser must agree with it token for token.
  const engine = new InferenceEngine({ modelHost: `${app.url}/models/`, cacheDir: path.join(app.dir, 'node-cache') });
  await engine.load(nano, 'auto', () => {});
  nodeTokens = (await engine.generate(MESSAGES, GREEDY, () => {})).tokenIds;
  await engine.unload();
}, 180_000);

// Registered after the app server's, so run before it closes (vitest runs after-hooks as a stack).
afterAll(() => Promise.all(browsers.map((b) => b.close())));

async function openPage(mode: 'webgpu' | 'no-gpu'): Promise<{ page: Page; offOrigin: string[] }> {
  const browser = await launchChromium(mode);
  browsers.push(browser);
  const page = await browser.newPage();
  const offOrigin: string[] = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(app.url) && !request.url().startsWith('data:') && !request.url().startsWith('blob:'))
      offOrigin.push(request.url());
  });
  await page.goto(app.url);
  return { page, offOrigin };
}

describe('the inference worker in Chromium', () => {
  it('on WASM gives the same greedy tokens as Node, loading nothing from off the origin', async () => {
    const { page, offOrigin } = await openPage('webgpu');
    const run = await runWorker(page, app.workerPath, nano, 'wasm', MESSAGES, GREEDY);
    expect(run.ready).toMatchObject({ type: 'ready', backend: 'wasm', dtype: 'fp32' });
    expect(run.phases).toEqual(['Fetching', 'Preparing', 'Downloading', 'Loading', 'Ready']);
    expect(run.complete).toMatchObject({ type: 'complete', tokenIds: nodeTokens });
    expect(run.tokens).toEqual(nodeTokens);
    expect(offOrigin).toEqual([]);
  }, 120_000);

  it('on WASM runs the threads a load asks for (the app is cross-origin isolated), with the same greedy tokens', async () => {
    const { page } = await openPage('no-gpu');
    expect(await page.evaluate('crossOriginIsolated')).toBe(true);
    // ONNX Runtime Web's own choice, which a load without `threads` keeps: half the cores, up to 4.
    const cores = (await page.evaluate('navigator.hardwareConcurrency')) as number;
    const usual = await workerSession(page, app.workerPath);
    expect(await usual.load(nano, 'wasm')).toMatchObject({ type: 'ready', threads: Math.min(4, Math.ceil(cores / 2)) });
    await usual.close();
    const threaded = await workerSession(page, app.workerPath);
    expect(await threaded.load(nano, 'wasm', 3)).toMatchObject({ type: 'ready', backend: 'wasm', threads: 3 });
    expect(await threaded.generate(MESSAGES, GREEDY)).toMatchObject({ type: 'complete', tokenIds: nodeTokens });
    // The runtime started with the first load: a later load's count cannot change it, and Ready says so.
    expect(await threaded.load(nano, 'wasm', 1)).toMatchObject({ type: 'ready', threads: 3 });
    await threaded.close();
  }, 180_000);

  it("on WASM, with ONNX Runtime's outputs on reused memory, gives Node's tokens over long answers and turns", async () => {
    // The build rewrote ONNX Runtime Web's output line to ask the worker's OutputArrays (vite.config.ts).
    const bundle = await readFile(path.join(app.dist, app.workerPath), 'utf8');
    expect(bundle).toContain('__meshOrtOutputArray?.(');
    // Past position 32 the wide model's KV outputs are 64 KiB and more, so they come from reused buffers: a long
    // answer, a next turn on the cache kept from it, then a sampled answer on a fresh start, each as Node makes them
    // (an output written over one still to be read would not).
    await downloadModel(app.url, await signUpCookie(app.url, 'engine-wide'), 'engine-wide');
    const first: EngineMessage[] = [{ role: 'user', content: 'Tell me of kings, of wars, of love and of the sea' }];
    const steps = async (generate: (messages: EngineMessage[], sampling: Sampling) => Promise<number[]>) => {
      const long = await generate(first, { ...GREEDY, maxNewTokens: 120 });
      const next = await generate(
        [...first, { role: 'assistant', content: String(long.length) }, { role: 'user', content: 'And then?' }],
        { ...GREEDY, maxNewTokens: 60 },
      );
      const sampled = await generate(first, { temperature: 0.9, topP: 0.95, maxNewTokens: 120, seed: 31 });
      return { long, next, sampled };
    };
    const engine = new InferenceEngine({ modelHost: `${app.url}/models/`, cacheDir: path.join(app.dir, 'node-cache') });
    await engine.load(wide, 'auto', () => {});
    const node = await steps(
      async (messages, sampling) => (await engine.generate(messages, sampling, () => {})).tokenIds,
    );
    await engine.unload();
    expect([node.long.length, node.next.length]).toEqual([120, 60]);
    expect(node.sampled.length).toBeGreaterThan(40);

    const { page } = await openPage('no-gpu');
    const session = await workerSession(page, app.workerPath);
    expect(await session.load(wide, 'wasm')).toMatchObject({ type: 'ready', backend: 'wasm' });
    const browser = await steps(async (messages, sampling) => {
      const done = await session.generate(messages, sampling);
      if (done.type !== 'complete') throw new Error(done.message);
      return done.tokenIds;
    });
    await session.close();
    expect(browser).toEqual(node);
  }, 180_000);

  it('on WebGPU (SwiftShader) gives the same greedy tokens as Node', async () => {
    const { page } = await openPage('webgpu');
    const run = await runWorker(page, app.workerPath, nano, 'auto', MESSAGES, GREEDY);
    expect(run.ready).toMatchObject({
      type: 'ready',
      backend: 'webgpu',
      dtype: 'fp32',
      reason: expect.stringMatching(/^WebGPU on /),
    });
    expect(run.tokens).toEqual(nodeTokens);
  }, 120_000);

  it('falls back to WASM when WebGPU fails to load the model', async () => {
    const { page } = await openPage('webgpu');
    // No q4 weights exist for the nano model: the WebGPU load fails on a 404 and the fp32 WASM load takes over.
    const run = await runWorker(
      page,
      app.workerPath,
      { ...nano, dtype: { webgpu: 'q4', wasm: 'fp32' } },
      'auto',
      MESSAGES,
      GREEDY,
    );
    expect(run.ready).toMatchObject({
      type: 'ready',
      backend: 'wasm',
      reason: expect.stringMatching(/WebGPU failed to load the model .*fell back to WASM/),
    });
    expect(run.tokens).toEqual(nodeTokens);
  }, 120_000);

  it('uses WASM, saying why, in a browser without a WebGPU adapter', async () => {
    const { page } = await openPage('no-gpu');
    const run = await runWorker(page, app.workerPath, nano, 'auto', MESSAGES, GREEDY);
    expect(run.ready).toMatchObject({ type: 'ready', backend: 'wasm', reason: expect.stringMatching(/WebGPU/) });
    expect(run.tokens).toEqual(nodeTokens);
  }, 120_000);
});
