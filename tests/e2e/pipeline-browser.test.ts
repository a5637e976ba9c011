// Browser stages: a generated model's 2- and 3-stage graphs, downloaded by the server from a fake Hub as catalogue
// files (verified, served by the /models/ proxy), opened in the app's own inference worker on onnxruntime-web
// (WASM, and WebGPU on SwiftShader) and chained on the page over in-memory wires, give exactly the tokens the
// inference engine gives on the whole model in Node (greedy and seeded); stage files kept in the device's model
// cache load from there; malformed stage requests are refused with a code (docs/pipeline.md, "Browser stages"). The
// same worker reads the model's tokenizer for a pipeline's requester (the prompt's ids, the answer's text, and its
// text as the tokens come, characters split across tokens held back).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import type { Sampling } from '../../src/shared/engine-protocol.ts';
import type { StageOpened } from '../../src/shared/pipeline/stage-worker-protocol.ts';
import { InferenceEngine } from '../../src/worker/engine.ts';
import { buildClient, launchChromium } from '../support/browser.ts';
import type { PageJob, PageStages } from '../support/pipeline-page.ts';
import { type ServerProcess, downloadModel, signUpCookie, startServer } from '../support/server-process.ts';
import { publishStagedModel, stagePageBundle } from '../support/stage-fixtures.ts';
import { promptIds } from '../../src/shared/chat-template.ts';

const OPTIONS = { layers: 4, hidden: 64, heads: 4, seed: 23, vocab: 400, maxPositions: 160 };
const ID = 'staged-tiny';
const REPO = `mesh/${ID}`;
const PROMPTS = ['Hello there, how are you?', 'Tell me a long story about the sea and the ships upon it.'];
const SAMPLINGS: { name: string; sampling: Sampling }[] = [
  { name: 'greedy', sampling: { temperature: 0, topP: 1, maxNewTokens: 24 } },
  { name: 'seeded', sampling: { temperature: 0.9, topP: 0.95, maxNewTokens: 24, seed: 4242 } },
];
/** Two stages with inline weights beside the whole model; three with external data in a folder of their own. */
const MANIFESTS = { 2: 'onnx/stages.json', 3: 'onnx/stages-3/stages.json' } as const;

let dir: string;
let hub: FakeHub;
let server: ServerProcess;
let workerPath: string;
let bundle: string;
let revision: string;
const browsers: Browser[] = [];
const jobs: { key: string; job: PageJob }[] = [];
const expected = new Map<string, number[]>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-e2e-stages-'));
  hub = new FakeHub();
  await hub.start();
  const staged = await publishStagedModel(hub, dir, ID, OPTIONS, [2, 3]);
  revision = staged.model.revision;
  expect(staged.manifests).toMatchObject(MANIFESTS);
  ({ workerPath } = await buildClient(path.join(dir, 'dist')));
  server = await startServer(
    {
      DATA_DIR: path.join(dir, 'data'),
      CLIENT_DIST_DIR: path.join(dir, 'dist'),
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: staged.manifestPath,
    },
    180_000,
  );
  await downloadModel(server.url, await signUpCookie(server.url, 'stage-keeper'), ID);

  // The whole model in Node, through the same server, as a peer serving it runs it today.
  const { model } = staged;
  const engine = new InferenceEngine({ modelHost: `${server.url}/models/`, cacheDir: path.join(dir, 'node-cache') });
  await engine.load(model, 'auto', () => {});
  const tokenizer: PreTrainedTokenizer = await AutoTokenizer.from_pretrained(REPO, { revision });
  const eos = tokenizer.convert_tokens_to_ids('<|im_end|>') as number;
  for (const prompt of PROMPTS)
    for (const { name, sampling } of SAMPLINGS) {
      const messages = [{ role: 'user' as const, content: prompt }];
      const result = await engine.generate(messages, sampling, () => {});
      await engine.reset();
      const key = `${prompt} (${name})`;
      expected.set(key, result.tokenIds);
      const ids = promptIds(tokenizer, messages);
      jobs.push({
        key,
        job: {
          prompt: ids,
          maxNewTokens: sampling.maxNewTokens,
          eos: [eos],
          temperature: sampling.temperature,
          topP: sampling.topP,
          seed: sampling.seed ?? 0,
        },
      });
    }
  await engine.unload();

  bundle = await stagePageBundle();
}, 600_000);

afterAll(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  server?.child.kill('SIGTERM');
  await server?.exited;
  await hub?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A page of the server's origin (not the app: no service worker) with the stage driver loaded. */
async function stagePage(mode: 'webgpu' | 'no-gpu'): Promise<{ page: Page; offOrigin: string[] }> {
  const browser = await launchChromium(mode);
  browsers.push(browser);
  // The server's CSP allows no inline script; the driver is one.
  const page = await (await browser.newContext({ bypassCSP: true })).newPage();
  const offOrigin: string[] = [];
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(server.url) && !url.startsWith('data:') && !url.startsWith('blob:')) offOrigin.push(url);
  });
  await page.goto(`${server.url}/api/health`);
  await page.addScriptTag({ type: 'module', content: bundle });
  await page.waitForFunction(() => 'meshStages' in globalThis);
  return { page, offOrigin };
}

function openStages(page: Page, count: 2 | 3, backend: 'auto' | 'webgpu' | 'wasm'): Promise<StageOpened[]> {
  const options = { workerPath, model: { repo: REPO, revision }, manifest: MANIFESTS[count], count, backend };
  return page.evaluate((o) => (globalThis as unknown as { meshStages: PageStages }).meshStages.open(o), options);
}

function generate(page: Page, list: PageJob[]) {
  return page.evaluate((l) => (globalThis as unknown as { meshStages: PageStages }).meshStages.generate(l), list);
}

async function expectEngineTokens(page: Page, chunk?: number) {
  const results = await generate(
    page,
    jobs.map(({ job }) => ({ ...job, chunk })),
  );
  jobs.forEach(({ key }, i) => expect(results[i]?.tokens, key).toEqual(expected.get(key)));
}

describe('browser stages (onnxruntime-web in the inference worker)', () => {
  it('the engine answers are real answers: long enough, and seeded ones differ from greedy ones', () => {
    for (const prompt of PROMPTS) {
      const greedy = expected.get(`${prompt} (greedy)`) ?? [];
      expect(greedy.length).toBeGreaterThan(4);
      expect(expected.get(`${prompt} (seeded)`)).not.toEqual(greedy);
    }
  });

  it('on WASM, 2 stages from the server give the whole model’s tokens, loading nothing off the origin', async () => {
    const { page, offOrigin } = await stagePage('no-gpu');
    const opened = await openStages(page, 2, 'auto');
    expect(opened.map((s) => [s.layers, s.backend])).toEqual([
      [[0, 2], 'wasm'],
      [[2, 4], 'wasm'],
    ]);
    expect(opened[0]?.reason).toMatch(/WebGPU/);
    expect(opened[0]?.files).toEqual({ 'onnx/stages.json': 'server', 'onnx/stage-0-of-2.onnx': 'server' });
    await expectEngineTokens(page);
    expect(offOrigin).toEqual([]);
  }, 400_000);

  it('on WASM, 3 stages with external data give the whole model’s tokens', async () => {
    const { page } = await stagePage('no-gpu');
    const opened = await openStages(page, 3, 'wasm');
    expect(opened.map((s) => s.layers)).toEqual([
      [0, 2],
      [2, 3],
      [3, 4],
    ]);
    expect(Object.keys(opened[1]?.files ?? {})).toEqual([
      'onnx/stages-3/stages.json',
      'onnx/stages-3/stage-1-of-3.onnx',
      'onnx/stages-3/stage-1-of-3.onnx_data',
    ]);
    // The prompt in chunks of 5 rows: the stages work on a long prefill at once.
    await expectEngineTokens(page, 5);
  }, 400_000);

  it('on WebGPU (SwiftShader), 2 stages give the whole model’s tokens', async () => {
    const { page } = await stagePage('webgpu');
    const opened = await openStages(page, 2, 'auto');
    expect(opened.map((s) => s.backend)).toEqual(['webgpu', 'webgpu']);
    await expectEngineTokens(page);
  }, 400_000);

  it('loads stage files kept in the device’s model cache from there', async () => {
    const { page } = await stagePage('no-gpu');
    const base = `/models/${REPO}/resolve/${revision}/`;
    const kept = [
      'onnx/stages-3/stages.json',
      'onnx/stages-3/stage-0-of-3.onnx',
      'onnx/stages-3/stage-0-of-3.onnx_data',
    ];
    // As the app's device cache saves a model: the file's response under its commit-pinned /models/ URL.
    await page.evaluate(
      async ({ base, kept }) => {
        const cache = await caches.open('mesh-models');
        for (const file of kept) await cache.put(base + file, await fetch(base + file));
      },
      { base, kept },
    );
    const opened = await openStages(page, 3, 'wasm');
    expect(opened[0]?.files).toEqual(Object.fromEntries(kept.map((f) => [f, 'device'])));
    // Stage 1's manifest is the one kept; its graph and data are not.
    expect(Object.values(opened[1]?.files ?? {})).toEqual(['device', 'server', 'server']);
    const [first] = jobs;
    const [result] = await generate(page, [first!.job]);
    expect(result?.tokens).toEqual(expected.get(first!.key));
  }, 300_000);

  it('refuses malformed stage requests with a code', async () => {
    const { page } = await stagePage('no-gpu');
    await openStages(page, 2, 'wasm');
    const raw = (message: unknown) =>
      page.evaluate((m) => (globalThis as unknown as { meshStages: PageStages }).meshStages.raw(m), message);
    const model = { repo: REPO, revision };
    expect(await raw({ type: 'stage-open', requestId: 'r1', stageId: 'x', model, index: 5 })).toMatchObject({
      type: 'stage-error',
      code: 'INVALID_REQUEST',
      message: expect.stringMatching(/has 2 stages/),
    });
    expect(
      await raw({ type: 'stage-open', requestId: 'r2', stageId: 'y', model, manifest: '../etc/passwd', index: 0 }),
    ).toMatchObject({ type: 'stage-error', code: 'INVALID_REQUEST' });
    expect(
      await raw({
        type: 'stage-run',
        requestId: 'r3',
        stageId: 'nope',
        feeds: {},
      }),
    ).toMatchObject({ type: 'stage-error', code: 'UNKNOWN_STAGE' });
    expect(
      await page.evaluate(() =>
        (globalThis as unknown as { meshStages: PageStages }).meshStages.raw({
          type: 'stage-run',
          requestId: 'r4',
          stageId: 'nope',
          feeds: { input_ids: { type: 'int64', data: new BigInt64Array(3), dims: [1, 2] } },
        }),
      ),
    ).toMatchObject({ type: 'stage-error', code: 'INVALID_REQUEST', message: expect.stringMatching(/do not match/) });
  }, 300_000);

  it("reads a model's tokenizer for a pipeline's requester: the prompt's ids and the answer's text", async () => {
    const { page } = await stagePage('no-gpu');
    await openStages(page, 2, 'wasm');
    const raw = (message: unknown) =>
      page.evaluate((m) => (globalThis as unknown as { meshStages: PageStages }).meshStages.raw(m), message);
    const model = { repo: REPO, revision };
    const [first] = jobs;
    const messages = [{ role: 'user', content: PROMPTS[0] }];
    // The ids Node's tokenizer gives with the chat template, and the end token the engine stops at.
    expect(await raw({ type: 'stage-tokenize', requestId: 't1', model, messages })).toEqual({
      type: 'stage-tokens',
      requestId: 't1',
      ids: first!.job.prompt,
      eos: expect.arrayContaining(first!.job.eos) as unknown,
    });
    const answer = expected.get(first!.key)!;
    const tokenizer = await AutoTokenizer.from_pretrained(REPO, { revision });
    expect(await raw({ type: 'stage-detokenize', requestId: 't2', model, ids: answer })).toEqual({
      type: 'stage-text',
      requestId: 't2',
      text: tokenizer.decode(answer, { skip_special_tokens: true }),
    });
    // An answer's text as its tokens come (the pipeline route's stream): in three requests, each cut inside a
    // character split across tokens (byte-level BPE), equal to the whole answer's decode, nothing split shown.
    const text = 'café € 🙂 ✓ and more';
    const ids = tokenizer.encode(text, { add_special_tokens: false });
    expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe(text);
    const inside = ids
      .map((_, i) => i)
      .filter((i) => i > 0 && tokenizer.decode(ids.slice(0, i), { skip_special_tokens: true }).endsWith('\uFFFD'));
    const [cutA, cutB] = [inside[0]!, inside.at(-1)!];
    expect(cutB).toBeGreaterThan(cutA);
    const deltas = { type: 'stage-text-deltas', model, streamId: 'answer' };
    const pieces = [
      await raw({ ...deltas, requestId: 'd1', from: 0, ids: ids.slice(0, cutA) }),
      await raw({ ...deltas, requestId: 'd2', from: cutA, ids: ids.slice(cutA, cutB) }),
      await raw({ ...deltas, requestId: 'd3', from: cutB, ids: ids.slice(cutB), end: true }),
    ] as { type: string; text: string }[];
    expect(pieces.map((p) => p.type)).toEqual(['stage-text', 'stage-text', 'stage-text']);
    expect(pieces.map((p) => p.text).join('')).toBe(text);
    expect(pieces.some((p) => p.text.includes('\uFFFD'))).toBe(false);
    // Ended, the worker forgot it: more of it is refused, with a code.
    expect(await raw({ ...deltas, requestId: 'd4', from: ids.length, ids: [1] })).toMatchObject({
      type: 'stage-error',
      code: 'INVALID_REQUEST',
      message: expect.stringMatching(/holds no tokens/),
    });
    expect(await raw({ type: 'stage-tokenize', requestId: 't3', model, messages: [] })).toMatchObject({
      type: 'stage-error',
      code: 'INVALID_REQUEST',
    });
    expect(
      await raw({ type: 'stage-tokenize', requestId: 't4', model: { repo: 'mesh/absent', revision }, messages }),
    ).toMatchObject({ type: 'stage-error', code: 'LOAD_FAILED', message: expect.stringMatching(/tokenizer/) });
  }, 300_000);
});
