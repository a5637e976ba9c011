// The export-shaped tiny models (grouped-query attention, external data in one file or chunks, fp16, q4 through
// MatMulNBits, q4f16 (MatMulNBits in float16 with float16 scales, a float16 KV cache and logits: the file WebGPU
// devices with shader-f16 fetch of SmolLM2, Qwen2.5 and Llama 3.2), transformers.js_config, a list of EOS ids, a
// system turn; scripts/tiny-model/export-shapes.ts) in the real inference worker in headless Chromium, downloaded
// through the server's proxy: on WASM and on WebGPU (SwiftShader) each gives the greedy tokens of the reference
// forward pass. fp16 and q4f16 need the adapter's shader-f16 on WebGPU: without it the engine says so and runs them
// on WASM (these repos have no file of another dtype to take instead: src/worker/backend.ts). The same models in
// Node: tests/export-shapes.test.ts. Runs on its own: `npx vitest run tests/e2e/export-shapes.test.ts`.
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import type { EngineMessage, EngineModel } from '../../src/shared/engine-protocol.ts';
import { useAppServer } from '../support/app-server.ts';
import { workerSession } from '../support/browser.ts';
import {
  ALL_EXPORT_SHAPE_NAMES,
  type PublishedExport,
  engineModelFromServer,
  publishExportShapes,
  referenceTokens,
} from '../support/export-fixtures.ts';
import { downloadModel, signUpCookie } from '../support/server-process.ts';

const MESSAGES: EngineMessage[] = [
  { role: 'system', content: 'You answer in riddles.' },
  { role: 'user', content: 'Now is the winter of our discontent' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 8 };
/** The dtypes WebGPU runs only with the adapter's shader-f16. */
const HALF = new Set(['fp16', 'q4f16']);

const hub = new FakeHub();
let published: Record<string, PublishedExport>;
const app = useAppServer({
  name: 'export-shapes',
  services: [hub],
  browser: 'webgpu',
  async env(dir) {
    const exported = await publishExportShapes(hub, path.join(dir, 'models'));
    published = exported.published;
    return { HF_ENDPOINT: hub.origin, MANIFEST_PATH: exported.manifestPath };
  },
});
/** Whether SwiftShader's adapter offers shader-f16, which transformers.js needs for fp16 and q4f16 on WebGPU. */
let shaderF16: boolean;
const models = new Map<string, { engine: EngineModel; published: PublishedExport; reference: number[] }>();

beforeAll(async () => {
  const cookie = await signUpCookie(app.url, 'export-shapes-e2e');
  await Promise.all(ALL_EXPORT_SHAPE_NAMES.map((id) => downloadModel(app.url, cookie, id)));
  for (const [name, model] of Object.entries(published)) {
    const { tokens } = await referenceTokens(path.join(app.dir, 'models'), model, MESSAGES, GREEDY.maxNewTokens);
    models.set(name, { engine: await engineModelFromServer(app.url, name), published: model, reference: tokens });
  }
  const page = await app.browser.newPage();
  await page.goto(app.url);
  shaderF16 = await page.evaluate(async () => {
    const gpu = (globalThis as unknown as { navigator: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator
      .gpu;
    const adapter = (await gpu?.requestAdapter()) as { features: { has(name: string): boolean } } | null | undefined;
    return adapter?.features.has('shader-f16') ?? false;
  });
  await page.close();
}, 240_000);

function variant(name: string) {
  const found = models.get(name);
  if (!found) throw new Error(`${name} was not prepared`);
  return found;
}

// One worker per backend, kept across the variants as the app keeps one: each load replaces the last model, and
// ONNX Runtime's start-up is paid once per backend rather than once per variant.
describe.each([
  { backend: 'wasm' as const, label: 'WASM' },
  { backend: 'auto' as const, label: 'WebGPU (SwiftShader)' },
])('export-shaped models in Chromium on $label', ({ backend }) => {
  let page: Page;
  let session: Awaited<ReturnType<typeof workerSession>>;
  beforeAll(async () => {
    page = await app.browser.newPage();
    await page.goto(app.url);
    session = await workerSession(page, app.workerPath);
  });
  afterAll(async () => {
    await session?.close();
    await page?.close();
  });

  it.each(ALL_EXPORT_SHAPE_NAMES)(
    '%s gives the reference greedy tokens',
    async (name) => {
      const { engine, published, reference } = variant(name);
      // The server derived the variant's files for its dtype, its graph among them (model_q4f16.onnx for q4f16).
      expect(engine.files).toContain(published.files.find((file) => /^onnx\/[^/]+\.onnx$/.test(file)));
      const ready = await session.load(engine, backend);
      if (backend === 'wasm') {
        expect(ready).toMatchObject({ type: 'ready', backend: 'wasm', dtype: published.shape.dtype });
      } else if (HALF.has(published.shape.dtype) && !shaderF16) {
        // transformers.js refuses fp16 and q4f16 on a WebGPU adapter without shader-f16, and these repos have no
        // fp32 or q4 file to take instead: the engine says so and runs on WASM (src/worker/backend.ts).
        expect(ready).toMatchObject({ type: 'ready', backend: 'wasm', reason: expect.stringMatching(/shader-f16/) });
      } else {
        expect(ready).toMatchObject({ type: 'ready', backend: 'webgpu', dtype: published.shape.dtype });
      }
      const done = await session.generate(MESSAGES, GREEDY);
      expect(done).toMatchObject({ type: 'complete', tokenIds: reference });
    },
    60_000,
  );
});
