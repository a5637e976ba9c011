// The inference worker in headless Chromium, loading the bundled nano model from the server's /models route and
// ONNX Runtime from the app's own files: WASM and WebGPU (SwiftShader) give the greedy tokens the engine gives in
// Node, and a WebGPU load that fails falls back to WASM. (The app around it: tests/e2e/pwa.test.ts.)
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineMessage, EngineModel } from '../../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../../src/worker/engine.ts';
import { useAppServer } from '../support/app-server.ts';
import { launchChromium, runWorker, workerSession } from '../support/browser.ts';
import { nanoEngineModel } from '../support/model-fixtures.ts';

const MESSAGES: EngineMessage[] = [{ role: 'user', content: 'Now is the winter of our discontent' }];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 24 };

const app = useAppServer({ name: 'engine', browser: 'none' });
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
