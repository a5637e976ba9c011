// The q4f16 export-shaped model (model_q4f16.onnx: com.microsoft MatMulNBits in float16 with float16 scales, a
// float16 KV cache and logits; scripts/tiny-model/export-shapes.ts), the file WebGPU devices with shader-f16 fetch
// of SmolLM2, Qwen2.5 and Llama 3.2, in the real inference worker in headless Chromium, downloaded through the
// server's proxy: on WASM it gives the reference forward pass's greedy tokens; on WebGPU (SwiftShader) too when
// the adapter offers shader-f16, and without it the engine says so and runs it on WASM (the repo has no q4 file
// to take instead: src/worker/backend.ts). The other variants: tests/e2e/export-shapes.test.ts; in Node:
// tests/export-shapes.test.ts. Runs on its own: `npx vitest run tests/e2e/export-shapes-q4f16.test.ts`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import type { EngineMessage, EngineModel } from '../../src/shared/engine-protocol.ts';
import { buildClient, launchChromium, workerSession } from '../support/browser.ts';
import { engineModelFromServer, publishExportShapes, referenceTokens } from '../support/export-fixtures.ts';
import { type ServerProcess, downloadModel, signUpCookie, startServer } from '../support/server-process.ts';

const NAME = 'q4f16';
const MESSAGES: EngineMessage[] = [
  { role: 'system', content: 'You answer in riddles.' },
  { role: 'user', content: 'Now is the winter of our discontent' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 8 };

let dir: string;
let hub: FakeHub;
let server: ServerProcess;
let workerPath: string;
let browser: Browser;
let shaderF16: boolean;
let engine: EngineModel;
let reference: number[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-e2e-q4f16-'));
  hub = new FakeHub();
  await hub.start();
  const [{ workerPath: built }, { manifestPath, published }] = await Promise.all([
    buildClient(path.join(dir, 'dist')),
    publishExportShapes(hub, path.join(dir, 'models'), [NAME]),
  ]);
  workerPath = built;
  server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    CLIENT_DIST_DIR: path.join(dir, 'dist'),
    HF_ENDPOINT: hub.origin,
    MANIFEST_PATH: manifestPath,
  });
  const cookie = await signUpCookie(server.url, 'q4f16-e2e');
  await downloadModel(server.url, cookie, NAME);
  const model = published[NAME];
  if (!model) throw new Error(`${NAME} was not published`);
  reference = (await referenceTokens(path.join(dir, 'models'), model, MESSAGES, GREEDY.maxNewTokens)).tokens;
  engine = await engineModelFromServer(server.url, NAME);
  expect(engine.files).toContain('onnx/model_q4f16.onnx');
  browser = await launchChromium('webgpu');
  const page = await browser.newPage();
  await page.goto(server.url);
  shaderF16 = await page.evaluate(async () => {
    const gpu = (globalThis as unknown as { navigator: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator
      .gpu;
    const adapter = (await gpu?.requestAdapter()) as { features: { has(name: string): boolean } } | null | undefined;
    return adapter?.features.has('shader-f16') ?? false;
  });
  await page.close();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  server?.child.kill('SIGTERM');
  await server?.exited;
  await hub?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe.each([
  { backend: 'wasm' as const, label: 'WASM' },
  { backend: 'auto' as const, label: 'WebGPU (SwiftShader)' },
])('the q4f16 export-shaped model in Chromium on $label', ({ backend }) => {
  let page: Page;
  let session: Awaited<ReturnType<typeof workerSession>>;
  beforeAll(async () => {
    page = await browser.newPage();
    await page.goto(server.url);
    session = await workerSession(page, workerPath);
  });
  afterAll(async () => {
    await session?.close();
    await page?.close();
  });

  it('gives the reference greedy tokens', async () => {
    const ready = await session.load(engine, backend);
    if (backend === 'wasm') {
      expect(ready).toMatchObject({ type: 'ready', backend: 'wasm', dtype: 'q4f16' });
    } else if (!shaderF16) {
      expect(ready).toMatchObject({ type: 'ready', backend: 'wasm', reason: expect.stringMatching(/shader-f16/) });
    } else {
      expect(ready).toMatchObject({ type: 'ready', backend: 'webgpu', dtype: 'q4f16' });
    }
    const done = await session.generate(MESSAGES, GREEDY);
    expect(done).toMatchObject({ type: 'complete', tokenIds: reference });
  }, 60_000);
});
