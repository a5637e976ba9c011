// The inference engine in Node: it loads models through a real server process's /models route (the bundled nano
// model and a generated one the server downloaded from the fake Hub), streams tokens whose greedy values equal
// the TypeScript reference forward pass, reuses the KV cache across turns, interrupts within one token, and
// guards the context length.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AutoTokenizer, type PreTrainedTokenizer, env } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FakeHub } from '../scripts/fake-hub.ts';
import { readWeights } from '../scripts/tiny-model/read-weights.ts';
import { greedy } from '../scripts/tiny-model/reference.ts';
import type { TinyWeights } from '../scripts/tiny-model/weights.ts';
import { EngineClient } from '../src/shared/engine-client.ts';
import type { EngineMessage, EngineModel, EngineReply } from '../src/shared/engine-protocol.ts';
import { NANO_MODEL_DIR } from '../src/server/models/bundled.ts';
import { EngineError, InferenceEngine, type LoadProgress } from '../src/worker/engine.ts';
import type { StreamedToken } from '../src/worker/token-streamer.ts';
import { inProcessWorker } from '../src/worker/in-process.ts';
import { nanoEngineModel, publishModels } from './support/model-fixtures.ts';
import { type ServerProcess, downloadModel, signUpCookie, startServer } from './support/server-process.ts';

const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 24 };

let dir: string;
let hub: FakeHub;
let server: ServerProcess;
let nano: EngineModel;
let nanoWeights: TinyWeights;
let tiny: EngineModel;
let tinyWeights: TinyWeights;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-engine-'));
  hub = new FakeHub();
  await hub.start();
  const { manifestPath, published } = await publishModels(hub, dir, [
    { id: 'engine-tiny', options: { layers: 2, hidden: 64, heads: 4, seed: 11, maxPositions: 96 } },
  ]);
  server = await startServer({
    DATA_DIR: path.join(dir, 'server'),
    HF_ENDPOINT: hub.origin,
    MANIFEST_PATH: manifestPath,
    CLIENT_DIST_DIR: path.join(dir, 'none'),
  });
  await downloadModel(server.url, await signUpCookie(server.url, 'engine-test'), 'engine-tiny');
  const tinyModel = published['engine-tiny'];
  if (!tinyModel?.weights) throw new Error('the generated model is missing');
  tiny = tinyModel.model;
  tinyWeights = tinyModel.weights;

  nano = await nanoEngineModel();
  nanoWeights = await readWeights(NANO_MODEL_DIR);
}, 120_000);

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
  await hub?.stop();
  await rm(dir, { recursive: true, force: true });
});

function newEngine() {
  return new InferenceEngine({ modelHost: `${server.url}/models/`, cacheDir: path.join(dir, 'tfjs-cache') });
}

/** The prompt's token ids and the reference forward pass's greedy answer to it. */
async function reference(model: EngineModel, weights: TinyWeights, messages: EngineMessage[], maxNew: number) {
  const tokenizer: PreTrainedTokenizer = await AutoTokenizer.from_pretrained(model.repo, { revision: model.revision });
  const { input_ids: ids } = tokenizer.apply_chat_template(messages, {
    add_generation_prompt: true,
    tokenize: true,
    return_tensor: false,
    return_dict: true,
  }) as unknown as { input_ids: number[] };
  const eos = tokenizer.convert_tokens_to_ids('<|im_end|>') as number;
  return { ids, eos, expected: greedy(weights, ids, maxNew, [eos]) };
}

describe.each([
  { name: 'the bundled nano model', model: () => nano, weights: () => nanoWeights },
  { name: 'a generated model downloaded through the proxy', model: () => tiny, weights: () => tinyWeights },
])('the engine in Node with $name', ({ model, weights }) => {
  it('loads through the server with phases in order and streams the reference greedy tokens', async () => {
    const engine = newEngine();
    const phases: string[] = [];
    const messages: string[] = [];
    let last: LoadProgress | null = null;
    const info = await engine.load(model(), 'auto', (p) => {
      if (phases.at(-1) !== p.phase) phases.push(p.phase);
      messages.push(p.message);
      last = p;
    });
    // The first run's costs are paid before Ready, by an answer nobody sees (its KV cache is dropped: the
    // reference tokens below come from a fresh conversation).
    expect(messages.at(-2)).toMatch(/^Warming up on /);
    expect(info.warmUpMs).toBeGreaterThan(0);
    expect(info.warmUpMs).toBeLessThanOrEqual(info.loadMs);
    // Per-file bytes: the weights file arrived whole, and the totals add up.
    const weightsFile = (last as LoadProgress | null)?.files['onnx/model.onnx'];
    expect(weightsFile?.total).toBeGreaterThan(0);
    expect(weightsFile?.loaded).toBe(weightsFile?.total);
    expect((last as LoadProgress | null)?.loaded).toBe((last as LoadProgress | null)?.total);
    expect(info).toMatchObject({ model: model().id, backend: 'cpu', dtype: 'fp32' });
    expect(info.reason).toMatch(/onnxruntime-node/);
    expect(phases[0]).toBe('Fetching');
    expect(phases.at(-1)).toBe('Ready');
    expect(phases).toContain('Preparing');
    expect(phases).toContain('Loading');

    for (const prompt of ['To be, or not to be', 'Good morrow, my lord.']) {
      const messages: EngineMessage[] = [{ role: 'user', content: prompt }];
      const streamed: StreamedToken[] = [];
      const result = await engine.generate(messages, GREEDY, (t) => streamed.push(t));
      const { ids, eos, expected } = await reference(model(), weights(), messages, GREEDY.maxNewTokens);
      expect(result.tokenIds).toEqual(expected);
      expect(streamed.map((t) => t.tokenId)).toEqual(expected);
      expect(streamed.map((t) => t.index)).toEqual(expected.map((_, i) => i));
      // The streamed deltas add up to the answer's text (random weights can emit invalid UTF-8, which decodes to
      // U+FFFD differently in pieces; the nano model writes real text).
      if (model() === nano) expect(result.text).not.toContain('\uFFFD');
      if (!result.text.includes('\uFFFD')) expect(streamed.map((t) => t.text).join('')).toBe(result.text);
      expect(result).toMatchObject({ promptTokens: ids.length, completionTokens: expected.length, trimmedMessages: 0 });
      expect(result.reason).toBe(expected.at(-1) === eos ? 'eos' : 'length');
      expect(result.ttftMs).toBeGreaterThan(0);
      expect(result.tokensPerSecond).toBeGreaterThan(0);
      await engine.reset();
    }
    await engine.unload();
  }, 120_000);
});

describe('the engine in Node', () => {
  it('reuses the KV cache on the next turn and gives the same tokens as a fresh run; reset forgets it', async () => {
    const engine = newEngine();
    await engine.load(nano, 'auto', () => {});
    const first: EngineMessage[] = [{ role: 'user', content: 'What say you, good sir?' }];
    const answer = await engine.generate(first, GREEDY, () => {});
    expect(answer.reusedTokens).toBe(0);
    const second: EngineMessage[] = [
      ...first,
      { role: 'assistant', content: answer.text },
      { role: 'user', content: 'And then?' },
    ];
    const cachedTurn = await engine.generate(second, GREEDY, () => {});
    expect(cachedTurn.reusedTokens).toBeGreaterThan(answer.promptTokens);

    await engine.reset();
    const fresh = await engine.generate(second, GREEDY, () => {});
    expect(fresh.reusedTokens).toBe(0);
    expect(fresh.tokenIds).toEqual(cachedTurn.tokenIds);
    expect(fresh.tokenIds).toEqual((await reference(nano, nanoWeights, second, GREEDY.maxNewTokens)).expected);
    await engine.unload();
  }, 60_000);

  it('stops within one token of an interrupt and says so', async () => {
    const engine = newEngine();
    await engine.load(tiny, 'auto', () => {});
    const seen: number[] = [];
    let interruptedAt = -1;
    const result = await engine.generate(
      [{ role: 'user', content: 'Go on and on' }],
      { temperature: 0.8, topP: 1, maxNewTokens: 60, seed: 5 },
      (t) => {
        seen.push(t.tokenId);
        if (t.index === 3) {
          interruptedAt = t.index;
          engine.interrupt();
        }
      },
    );
    expect(interruptedAt).toBe(3);
    expect(result.reason).toBe('interrupted');
    // The token being computed when the interrupt arrived may still come; nothing after it.
    expect(result.completionTokens).toBeLessThanOrEqual(interruptedAt + 2);
    expect(seen).toEqual(result.tokenIds);
    await engine.unload();
  }, 60_000);

  it('samples reproducibly from a seed, and a continuation from prompt plus tokens so far matches', async () => {
    const engine = newEngine();
    await engine.load(tiny, 'auto', () => {});
    const messages: EngineMessage[] = [{ role: 'user', content: 'Tell me a story' }];
    const sampling = { temperature: 0.9, topP: 0.9, maxNewTokens: 30, seed: 1234 };
    const a = await engine.generate(messages, sampling, () => {});
    await engine.reset();
    const b = await engine.generate(messages, sampling, () => {});
    expect(b.tokenIds).toEqual(a.tokenIds);
    await engine.reset();
    const other = await engine.generate(messages, { ...sampling, seed: 99 }, () => {});
    expect(other.tokenIds).not.toEqual(a.tokenIds);
    // Greedy differs from the sampled answer, so the sampler really sampled.
    await engine.reset();
    const greedyRun = await engine.generate(messages, { ...sampling, temperature: 0 }, () => {});
    expect(greedyRun.tokenIds).not.toEqual(a.tokenIds);
    await engine.unload();
  }, 60_000);

  it('never answers with nothing: the nano model, which ends at once for some seeds, says something for each', async () => {
    const engine = newEngine();
    await engine.load(nano, 'auto', () => {});
    const messages: EngineMessage[] = [{ role: 'user', content: 'Good morrow, what news?' }];
    // Before the rule, some of seeds 40 to 59 (42 among them) drew the end of the answer as its first token.
    for (let seed = 40; seed < 60; seed++) {
      await engine.reset();
      const answer = await engine.generate(messages, { temperature: 0.7, topP: 0.95, maxNewTokens: 6, seed }, () => {});
      // Ended by its first token, the answer would be empty.
      expect(answer.reason === 'eos' && answer.tokenIds.length === 1, `seed ${seed}`).toBe(false);
      expect(answer.text, `seed ${seed}`).not.toBe('');
    }
    await engine.unload();
  }, 60_000);

  it.each([
    ['the generated model', () => tiny],
    ['the nano model', () => nano],
  ])(
    'continues %s after a prefix of answer tokens exactly as one whole run, indexes and texts included',
    async (_name, model) => {
      const engine = newEngine();
      await engine.load(model(), 'auto', () => {});
      const messages: EngineMessage[] = [{ role: 'user', content: 'Speak of the king' }];
      const sampling = { temperature: 0.8, topP: 0.95, maxNewTokens: 30, seed: 77 };
      const whole: StreamedToken[] = [];
      const full = await engine.generate(messages, sampling, (t) => whole.push(t));
      expect(full.tokenIds.length).toBeGreaterThan(12);
      for (const cut of [1, 7, 12]) {
        // A fresh engine, as on another peer (no cache of the first run).
        const other = newEngine();
        await other.load(model(), 'auto', () => {});
        const rest: StreamedToken[] = [];
        const resumed = await other.generate(messages, sampling, (t) => rest.push(t), full.tokenIds.slice(0, cut));
        expect(resumed.tokenIds).toEqual(full.tokenIds.slice(cut));
        expect(rest.map((t) => [t.index, t.tokenId, t.text])).toEqual(
          whole.slice(cut).map((t) => [t.index, t.tokenId, t.text]),
        );
        expect(
          whole
            .slice(0, cut)
            .map((t) => t.text)
            .join('') + rest.map((t) => t.text).join(''),
        ).toBe(full.text);
        expect(resumed.completionTokens).toBe(full.tokenIds.length - cut);
        await other.unload();
      }
      // A prefix as long as the budget leaves nothing to do: refused, not a crash.
      await expect(
        engine.generate(messages, { ...sampling, maxNewTokens: 3 }, () => {}, [1, 2, 3]),
      ).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
      await engine.unload();
    },
    120_000,
  );

  it('trims the oldest turns to fit the context, and refuses a message that cannot fit', async () => {
    const engine = newEngine();
    const loaded = await engine.load(tiny, 'auto', () => {});
    expect(loaded.contextLength).toBe(96);
    const history: EngineMessage[] = [{ role: 'system', content: 'Be brief.' }];
    for (let i = 0; i < 6; i++)
      history.push(
        { role: 'user', content: `question ${i} ${'x'.repeat(10)}` },
        { role: 'assistant', content: `answer ${i}` },
      );
    history.push({ role: 'user', content: 'last one' });
    const result = await engine.generate(history, { ...GREEDY, maxNewTokens: 16 }, () => {});
    expect(result.trimmedMessages).toBeGreaterThan(0);
    expect(result.trimmedMessages % 2).toBe(0);
    expect(result.promptTokens + 16).toBeLessThanOrEqual(96);

    const error = await engine
      .generate([{ role: 'user', content: 'y'.repeat(400) }], GREEDY, () => {})
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect(error).toMatchObject({
      code: 'CONTEXT_OVERFLOW',
      message: expect.stringMatching(/holds 96 tokens of context/),
    });
    // The engine is still usable after the refusal.
    expect(
      (await engine.generate([{ role: 'user', content: 'hi' }], GREEDY, () => {})).completionTokens,
    ).toBeGreaterThan(0);
    await engine.unload();
  }, 60_000);

  it('starts the runtime as a load begins, and creates a non-WASM session only once the runtime has started', async () => {
    const events: string[] = [];
    let release = () => {};
    const engine = new InferenceEngine({
      modelHost: `${server.url}/models/`,
      cacheDir: path.join(dir, 'tfjs-cache'),
      startRuntime: () => {
        events.push('start');
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    let phase = '';
    const loading = engine.load(nano, 'auto', (p) => {
      if (phase !== p.phase) events.push((phase = p.phase));
      // The backend is chosen: hold the runtime a moment longer, as a slow WebAssembly compile would.
      if (p.phase === 'Preparing' && p.message.endsWith('(fp32)') && !events.includes('holding')) {
        events.push('holding');
        setTimeout(() => {
          events.push('started');
          release();
        }, 300);
      }
    });
    const info = await loading;
    expect(info.backend).toBe('cpu');
    // Started before the first file was asked for; the model's session (Downloading, Loading) waited for it.
    expect(events).toEqual(['start', 'Fetching', 'Preparing', 'holding', 'started', 'Downloading', 'Loading', 'Ready']);
    expect((await engine.generate([{ role: 'user', content: 'Speak' }], GREEDY, () => {})).completionTokens).toBe(
      GREEDY.maxNewTokens,
    );
    await engine.unload();
  }, 60_000);

  it('refuses to generate before a model is loaded and reports a model it cannot load', async () => {
    const engine = newEngine();
    await expect(engine.generate([{ role: 'user', content: 'hi' }], GREEDY, () => {})).rejects.toMatchObject({
      code: 'NOT_LOADED',
    });
    const missing = { ...tiny, id: 'missing', repo: 'mesh/not-cached' };
    await expect(engine.load(missing, 'auto', () => {})).rejects.toMatchObject({
      code: 'LOAD_FAILED',
      message: expect.stringMatching(/Could not load missing/),
    });
  }, 30_000);
});

// Keep transformers.js' global settings from leaking into other files run in the same worker.
afterAll(() => {
  env.allowLocalModels = true;
  env.allowRemoteModels = false;
});

describe('the engine client over the worker protocol', () => {
  it('loads with progress, streams tokens as an async iterator, and stop() ends the answer early', async () => {
    const client = new EngineClient(inProcessWorker(newEngine()));
    const phases: string[] = [];
    const info = await client.load(nano, { onProgress: (p) => phases.push(p.phase) });
    expect(info.backend).toBe('cpu');
    expect(phases.at(-1)).toBe('Ready');

    const messages: EngineMessage[] = [{ role: 'user', content: 'Speak, speak!' }];
    const generation = client.generate(messages, GREEDY);
    const tokens: number[] = [];
    for await (const token of generation) tokens.push(token.tokenId);
    const outcome = await generation.result;
    expect(tokens).toEqual(outcome.tokenIds);
    expect(tokens).toEqual((await reference(nano, nanoWeights, messages, GREEDY.maxNewTokens)).expected);

    client.reset();
    const long = client.generate(messages, { temperature: 1, topP: 1, maxNewTokens: 200, seed: 3 });
    let count = 0;
    for await (const _token of long) if (++count === 2) long.stop();
    const stopped = await long.result;
    expect(stopped.reason === 'interrupted' || stopped.reason === 'eos').toBe(true);
    expect(stopped.completionTokens).toBeLessThanOrEqual(4);
    client.terminate();
  }, 60_000);

  it('warms up before Ready without a token reaching the page, and the first answer is the reference greedy one', async () => {
    const replies: EngineReply[] = [];
    const worker = inProcessWorker(newEngine());
    worker.addEventListener('message', (event) => replies.push(event.data));
    worker.sendRaw({ type: 'load', requestId: 'load-1', model: nano, backend: 'auto' });
    await vi.waitFor(() => expect(replies.at(-1)?.type).toBe('ready'), { timeout: 30_000 });
    const ready = replies.at(-1);
    expect(ready).toMatchObject({ warmUpMs: expect.any(Number) });
    expect((ready as { warmUpMs: number }).warmUpMs).toBeGreaterThan(0);
    // The warm-up's answer made tokens (warmUpMs > 0 above), none of which was posted: only progress, then Ready.
    expect(new Set(replies.slice(0, -1).map((r) => r.type))).toEqual(new Set(['progress']));
    expect(replies.some((r) => r.type === 'progress' && r.message.startsWith('Warming up on '))).toBe(true);

    replies.length = 0;
    const messages: EngineMessage[] = [{ role: 'user', content: 'Hello' }];
    worker.sendRaw({ type: 'generate', requestId: 'gen-1', messages, sampling: GREEDY });
    await vi.waitFor(() => expect(replies.at(-1)?.type).toBe('complete'), { timeout: 30_000 });
    const expected = (await reference(nano, nanoWeights, messages, GREEDY.maxNewTokens)).expected;
    // The warm-up asked the same question: its KV cache was dropped, so nothing is reused and the answer is whole.
    expect(replies.at(-1)).toMatchObject({ type: 'complete', tokenIds: expected, reusedTokens: 0 });
    expect(replies.filter((r) => r.type === 'token').map((r) => (r as { tokenId: number }).tokenId)).toEqual(expected);
    worker.terminate();
  }, 60_000);

  it('answers a malformed request with INVALID_REQUEST naming the field, and a generate before load with NOT_LOADED', async () => {
    const replies: EngineReply[] = [];
    const worker = inProcessWorker(newEngine());
    worker.addEventListener('message', (event) => replies.push(event.data));
    worker.sendRaw({ type: 'generate', requestId: 'bad-1', messages: [{ role: 'wizard', content: 'hi' }] });
    worker.sendRaw({ type: 'explode', requestId: 'bad-2' });
    await vi.waitFor(() => expect(replies).toHaveLength(2));
    expect(replies).toEqual([
      expect.objectContaining({
        type: 'error',
        requestId: 'bad-1',
        code: 'INVALID_REQUEST',
        message: expect.stringMatching(/messages\[0\]\.role/),
      }),
      expect.objectContaining({ type: 'error', requestId: 'bad-2', code: 'INVALID_REQUEST' }),
    ]);
    const client = new EngineClient(worker);
    await expect(client.generate([{ role: 'user', content: 'hi' }]).result).rejects.toMatchObject({
      code: 'NOT_LOADED',
    });
  });
});
