// The browser stage's parts without a browser: the stage worker host (src/worker/stage-worker-host.ts) on the
// real onnxruntime-web (its WASM build runs in Node too), reading a generated model's stage files over HTTP from a
// real server, driven through a structured-clone port by the page-side stage sessions: chained, they give the
// tokens onnxruntime-node's stages give; each run takes the engine gate as mesh work, so local work holding the
// gate holds the stages (docs/pipeline.md, "Browser stages"). Chromium: tests/e2e/pipeline-browser.test.ts.
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateStagedModel } from '../scripts/tiny-model/stages.ts';
import { rng } from '../scripts/tiny-model/weights.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import type { EngineMessage } from '../src/shared/engine-protocol.ts';
import { EngineGate } from '../src/shared/mesh/engine-gate.ts';
import { inProcessPipeline } from '../src/shared/pipeline/in-process.ts';
import type { StageSession } from '../src/shared/pipeline/stage-session.ts';
import { type StageWorkerPort, openWorkerStage, workerTokenizer } from '../src/shared/pipeline/worker-stage-session.ts';
import { promptIds } from '../src/shared/chat-template.ts';
import { createStageWorkerHost } from '../src/worker/stage-worker-host.ts';

const REPO = 'mesh/tiny-stages';
const REVISION = 'c0ffee'.padEnd(40, '0');
const OPTIONS = { layers: 4, hidden: 64, heads: 4, seed: 5, vocab: 300, maxPositions: 128 };

let dir: string;
let server: Server;
let modelHost: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-stage-worker-'));
  await generateStagedModel(dir, { ...OPTIONS, stages: 2 });
  const prefix = `/models/${REPO}/resolve/${REVISION}/`;
  server = createServer((request, response) => {
    const url = request.url ?? '';
    // No keep-alive: a socket idle while ONNX Runtime compiles (the event loop blocked for seconds) would be
    // closed by the server just as the next fetch reuses it.
    response.setHeader('connection', 'close');
    const file = url.startsWith(prefix) ? path.join(dir, url.slice(prefix.length)) : null;
    void (file ? stat(file) : Promise.reject(new Error('no'))).then(
      () => createReadStream(file!).pipe(response),
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  modelHost = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/`;
}, 120_000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The worker's host behind a port that structured-clones each message both ways, as postMessage does. */
function workerPort(onRun: () => void = () => {}): StageWorkerPort {
  const listeners = new Set<(event: { data: unknown }) => void>();
  const handle = createStageWorkerHost({ modelHost }, (reply) => {
    const data = structuredClone(reply);
    setImmediate(() => listeners.forEach((listener) => listener({ data })));
  });
  return {
    postMessage(message) {
      if (message.type === 'stage-run') onRun();
      void handle(structuredClone(message));
    },
    addEventListener: (_type, listener) => listeners.add(listener),
    removeEventListener: (_type, listener) => listeners.delete(listener),
  };
}

const model = { repo: REPO, revision: REVISION };
const next = rng(3);
const prompt = Array.from({ length: 12 }, () => 3 + Math.floor(next() * 250));

async function tokens(sessions: StageSession[], job: { temperature: number; topP: number; seed: number }) {
  const pipeline = inProcessPipeline(sessions);
  const out: number[] = [];
  for await (const token of pipeline.generate(job, { jobId: 'j', prompt, maxNewTokens: 12, eos: new Set(), chunk: 4 }))
    out.push(token);
  await pipeline.close();
  return out;
}

describe('the stage worker host on onnxruntime-web', () => {
  it.each([
    ['greedy', { temperature: 0, topP: 1, seed: 0 }],
    ['seeded', { temperature: 0.9, topP: 0.95, seed: 77 }],
  ])(
    'gives the tokens of onnxruntime-node stages (%s)',
    async (_, job) => {
      const port = workerPort();
      const web = [
        await openWorkerStage(port, { model, index: 0, backend: 'auto' }),
        await openWorkerStage(port, { model, index: 1, backend: 'auto' }),
      ];
      expect(web.map((s) => [s.opened.layers, s.opened.backend, s.opened.reason])).toEqual([
        [[0, 2], 'wasm', 'No WebGPU adapter available: WASM on the CPU'],
        [[2, 4], 'wasm', 'No WebGPU adapter available: WASM on the CPU'],
      ]);
      expect(web[1]?.opened.files).toEqual({ 'onnx/stages.json': 'server', 'onnx/stage-1-of-2.onnx': 'server' });
      const node = await Promise.all(
        [0, 1].map((i) => openOrtStage(path.join(dir, 'onnx', `stage-${i}-of-2.onnx`), { threads: 1 })),
      );
      const expected = await tokens(node, job);
      expect(expected).toHaveLength(12);
      expect(await tokens(web, job)).toEqual(expected);
      await Promise.all([...web, ...node].map((s) => s.release()));
    },
    60_000,
  );

  it('runs a stage only while local work does not hold the engine gate', async () => {
    const gate = new EngineGate();
    let runs = 0;
    const port = workerPort(() => runs++);
    const web = [
      await openWorkerStage(port, { model, index: 0, backend: 'wasm' }, gate),
      await openWorkerStage(port, { model, index: 1, backend: 'wasm' }, gate),
    ];
    const greedy = { temperature: 0, topP: 1, seed: 0 };
    const expected = await tokens(web, greedy);
    const pipeline = inProcessPipeline(web);
    const out: number[] = [];
    let window: [number, number] | null = null;
    for await (const token of pipeline.generate(greedy, { jobId: 'g', prompt, maxNewTokens: 12, eos: new Set() })) {
      out.push(token);
      if (out.length === 3) {
        // This device's chat takes the engine: it waits for the frame running, then the stages wait for it.
        const release = await gate.acquire('local');
        const before = runs;
        await new Promise((resolve) => setTimeout(resolve, 300));
        window = [before, runs];
        release();
      }
    }
    expect(window).not.toBeNull();
    expect(window![1]).toBe(window![0]);
    expect(out).toEqual(expected);
    await pipeline.close();
    await Promise.all(web.map((s) => s.release()));
  }, 120_000);

  it("fits a long conversation to the model's context as the engine does (the pipeline requester's tokenizer)", async () => {
    const tokenizer = workerTokenizer(workerPort(), model);
    const history: EngineMessage[] = [{ role: 'system', content: 'Be brief.' }];
    for (let i = 0; i < 6; i++)
      history.push(
        { role: 'user', content: `question ${i} ${'x'.repeat(12)}` },
        { role: 'assistant', content: `answer ${i}` },
      );
    history.push({ role: 'user', content: 'last one' });
    // The same tokenizer in Node, read from the model's files as the worker reads them.
    const read = async (name: string) => JSON.parse(await readFile(path.join(dir, name), 'utf8')) as object;
    const node = new PreTrainedTokenizer(await read('tokenizer.json'), await read('tokenizer_config.json'));
    const context = OPTIONS.maxPositions;
    const whole = await tokenizer.tokenize(history);
    expect(whole.ids).toEqual(promptIds(node, history));
    expect(whole.ids.length + 16).toBeGreaterThan(context);
    expect(whole.fitted).toBeUndefined();

    const fitted = await tokenizer.tokenize(history, { context, maxNewTokens: 16 });
    const trimmed = fitted.fitted?.trimmed ?? 0;
    // Whole turns left out, the oldest first, the system prompt kept; no more than needed.
    expect(trimmed).toBeGreaterThan(0);
    expect(trimmed % 2).toBe(0);
    expect(fitted.ids).toEqual(promptIds(node, [history[0]!, ...history.slice(1 + trimmed)]));
    expect(fitted.ids.length + 16).toBeLessThanOrEqual(context);
    expect(promptIds(node, [history[0]!, ...history.slice(1 + trimmed - 2)]).length + 16).toBeGreaterThan(context);
    expect(fitted.fitted?.maxNewTokens).toBe(16);

    // A last message that leaves less room than asked: the answer gets what is left.
    const long: EngineMessage[] = [{ role: 'user', content: '7'.repeat(context - 50) }];
    const clipped = await tokenizer.tokenize(long, { context, maxNewTokens: 64 });
    expect(clipped.fitted?.maxNewTokens).toBe(context - promptIds(node, long).length);
    expect(clipped.fitted?.maxNewTokens).toBeLessThan(64);
    // One that leaves no room: refused with the engine's code.
    await expect(
      tokenizer.tokenize([{ role: 'user', content: '7'.repeat(context) }], { context, maxNewTokens: 16 }),
    ).rejects.toMatchObject({ code: 'CONTEXT_OVERFLOW', message: expect.stringMatching(/holds 128 tokens/) });
  }, 60_000);

  it("streams an answer's text from its tokens, equal to decoding the whole answer, characters split across tokens held back", async () => {
    const port = workerPort();
    const tokenizer = workerTokenizer(port, model);
    const read = async (name: string) => JSON.parse(await readFile(path.join(dir, name), 'utf8')) as object;
    const node = new PreTrainedTokenizer(await read('tokenizer.json'), await read('tokenizer_config.json'));
    // Byte-level BPE: "é", "€" and "🙂" arrive as 2, 3 and 4 tokens.
    const answer = 'Ünïcödé ✓ café € 🙂 and numbers 12345. '.repeat(40);
    const ids = node.encode(answer, { add_special_tokens: false });
    expect(ids.length).toBeGreaterThan(1500);
    const whole = node.decode(ids, { skip_special_tokens: true });
    expect(await tokenizer.detokenize(ids)).toBe(whole);

    const pieces: string[] = [];
    const requests: { from: number; count: number }[] = [];
    const counting: typeof port = {
      ...port,
      postMessage(message) {
        if (message.type === 'stage-text-deltas') requests.push({ from: message.from, count: message.ids.length });
        port.postMessage(message);
      },
    };
    const text = workerTokenizer(counting, model).textStream((piece) => pieces.push(piece));
    for (const [i, id] of ids.entries()) {
      text.push(id);
      // Tokens as a pipeline's come: mostly one by one, now and then several while a decode is on its way.
      if (i % 7 !== 3) await new Promise((resolve) => setImmediate(resolve));
    }
    await text.end();
    expect(pieces.join('')).toBe(whole);
    expect(pieces.some((piece) => piece.includes('\uFFFD'))).toBe(false);
    // Each request carries the ids not sent yet, in order, never the answer again.
    expect(requests.reduce((n, r) => (r.from === n ? n + r.count : -1), 0)).toBe(ids.length);
    expect(requests.length).toBeGreaterThan(ids.length / 4);

    // Ended: the worker forgot it; a stream that skips ids, runs past an answer's length or sends no whole ids is
    // refused with a code.
    const raw = (message: unknown) =>
      new Promise<unknown>((resolve) => {
        const listener = (event: { data: unknown }) => {
          if ((event.data as { requestId?: string }).requestId !== 'raw') return;
          port.removeEventListener('message', listener);
          resolve(event.data);
        };
        port.addEventListener('message', listener);
        port.postMessage(message as Parameters<typeof port.postMessage>[0]);
      });
    const deltas = { type: 'stage-text-deltas', requestId: 'raw', model, streamId: 'a' };
    expect(await raw({ ...deltas, from: 0, ids: ids.slice(0, 3) })).toMatchObject({ type: 'stage-text' });
    for (const refused of [
      { ...deltas, from: 5, ids: [1] },
      { ...deltas, streamId: 'never-started', from: 3, ids: [1] },
      { ...deltas, from: 3, ids: [1.5] },
      { ...deltas, from: 4000, ids: Array.from({ length: 100 }, () => 1) },
      { ...deltas, from: 3, ids: [1], extra: true },
    ])
      expect(await raw(refused), JSON.stringify(refused).slice(0, 80)).toMatchObject({
        type: 'stage-error',
        code: 'INVALID_REQUEST',
      });
  }, 60_000);

  it('refuses what it cannot do, with a code', async () => {
    const port = workerPort();
    await expect(openWorkerStage(port, { model, index: 2, backend: 'wasm' })).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringMatching(/has 2 stages, not a stage 2/),
    });
    await expect(
      openWorkerStage(port, { model, manifest: 'onnx/missing.json', index: 0, backend: 'wasm' }),
    ).rejects.toMatchObject({ code: 'LOAD_FAILED', message: expect.stringMatching(/404/) });
    const opened = await Promise.all(
      Array.from({ length: 8 }, () => openWorkerStage(port, { model, index: 0, backend: 'wasm' })),
    );
    await expect(openWorkerStage(port, { model, index: 0, backend: 'wasm' })).rejects.toMatchObject({
      code: 'TOO_MANY_STAGES',
    });
    const [first] = opened;
    await first!.release();
    await expect(first!.run({})).rejects.toMatchObject({ code: 'UNKNOWN_STAGE' });
    await Promise.all(opened.slice(1).map((s) => s.release()));
  }, 120_000);
});
