// Models added by repo id (models.add; README "Add a model by its repo id"), against the fake Hub: each refusal names
// the check that failed; an added model shows its size per dtype, is seen by the account that added it (or by
// everyone when an operator added it for everyone), and downloads and loads like a built-in one; the download proxy
// serves its files only to the sessions whose catalogue shows it.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type FakeHub, bufferContent, generatedContent } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import type { CatalogueEntry } from '../src/shared/schemas/models.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { signUpInjected } from './support/accounts.ts';
import { type PublishedExport, publishExportShape, referenceTokens } from './support/export-fixtures.ts';
import { useHubApp } from './support/hub-app.ts';

const fixture = useHubApp(
  {
    name: 'models-add',
    publish,
    env: { OPERATORS: 'keeper', MODELS_ADDED_PER_ACCOUNT: '2', MODEL_ADD_REPO_PATTERN: '^mesh/' },
    listen: true,
    username: 'ann',
  },
  180_000,
);
let ann: string;
let bob: string;
let keeper: string;
let q4f16: PublishedExport;

const card = (license: string | null) =>
  bufferContent(license ? `---\nlicense: ${license}\n---\n# A model\n` : '# No front matter\n');
const tokenizer = { 'tokenizer.json': bufferContent('{}'), 'tokenizer_config.json': bufferContent('{}') };
const llama = bufferContent(JSON.stringify({ model_type: 'llama', max_position_embeddings: 4096 }));

async function publish(hub: FakeHub, dir: string): Promise<void> {
  // A real (tiny) Llama model: it must load and answer once added and downloaded.
  const local = path.join(dir, 'tiny');
  await generateRandomModel(local, { layers: 1, hidden: 16, heads: 2, seed: 9 });
  const read = async (name: string) => bufferContent(await readFile(path.join(local, name)));
  const generated = {
    'config.json': await read('config.json'),
    'generation_config.json': await read('generation_config.json'),
    'tokenizer.json': await read('tokenizer.json'),
    'tokenizer_config.json': await read('tokenizer_config.json'),
    'onnx/model.onnx': await read('onnx/model.onnx'),
    'README.md': card('apache-2.0'),
  };
  await hub.addRepo('mesh/tiny-chat', generated);
  // Several dtypes, of known sizes: the size per dtype is the graph plus what every dtype shares.
  await hub.addRepo('mesh/many-dtypes', {
    'config.json': llama,
    ...tokenizer,
    'README.md': card('mit'),
    'onnx/model_q4.onnx': generatedContent(1000, 1),
    'onnx/model_q4f16.onnx': generatedContent(700, 2),
    'onnx/model_quantized.onnx': generatedContent(1500, 3),
    'onnx/model.onnx': generatedContent(4000, 4),
  });
  await hub.addRepo('mesh/gated', {
    'config.json': llama,
    ...tokenizer,
    'onnx/model_q4.onnx': generatedContent(10, 1),
    'README.md': card('llama3.2'),
  });
  hub.gate('mesh/gated', ['someone-else']);
  await hub.addRepo('mesh/encoder', {
    'config.json': bufferContent('{"model_type":"bert"}'),
    ...tokenizer,
    'README.md': card('mit'),
  });
  await hub.addRepo('mesh/no-tokenizer', {
    'config.json': llama,
    'onnx/model_q4.onnx': generatedContent(10, 1),
    'README.md': card('mit'),
  });
  await hub.addRepo('mesh/no-onnx', {
    'config.json': llama,
    ...tokenizer,
    'model.safetensors': generatedContent(10, 1),
    'README.md': card('mit'),
  });
  await hub.addRepo('mesh/bnb4-only', {
    'config.json': llama,
    ...tokenizer,
    'onnx/model_bnb4.onnx': generatedContent(10, 1),
    'README.md': card('mit'),
  });
  // A real (tiny) export with only q4f16 weights (MatMulNBits in float16), as a WebGPU-first repo may publish.
  q4f16 = await publishExportShape(hub, path.join(dir, 'exports'), 'q4f16', {
    repo: 'mesh/q4f16-only',
    license: 'apache-2.0',
  });
  await hub.addRepo('mesh/no-license', {
    'config.json': llama,
    ...tokenizer,
    'onnx/model_q4.onnx': generatedContent(10, 1),
    'README.md': card(null),
  });
  await hub.addRepo('other/outside', {
    'config.json': llama,
    ...tokenizer,
    'onnx/model_q4.onnx': generatedContent(10, 1),
    'README.md': card('mit'),
  });
  for (const name of ['a', 'b', 'c']) {
    await hub.addRepo(`mesh/cap-${name}`, {
      'config.json': llama,
      ...tokenizer,
      'onnx/model_q4.onnx': generatedContent(10, 1),
      'README.md': card('mit'),
    });
  }
}

beforeAll(async () => {
  ann = fixture.cookie;
  bob = await signUpInjected(fixture.app, 'bob');
  keeper = await signUpInjected(fixture.app, 'keeper');
});

interface Answer {
  status: number;
  data?: { entry: CatalogueEntry & { id: string }; sizes: { dtype: string; bytes: number }[]; commit: string };
  error?: { message: string; data: { code: string; check: string | null } };
}

async function add(cookie: string, input: Record<string, unknown>): Promise<Answer> {
  const response = await fixture.app.inject({
    method: 'POST',
    url: '/api/trpc/models.add',
    payload: input,
    headers: { cookie },
  });
  const body = response.json() as { result?: { data: Answer['data'] }; error?: Answer['error'] };
  return { status: response.statusCode, data: body.result?.data, error: body.error };
}

async function refusal(cookie: string, repo: string) {
  const answer = await add(cookie, { repo });
  expect(answer.data).toBeUndefined();
  return { status: answer.status, check: answer.error?.data.check, message: answer.error?.message };
}

async function catalogue(cookie?: string): Promise<CatalogueEntry[]> {
  const response = await fixture.app.inject({ url: '/api/trpc/manifest.list', headers: cookie ? { cookie } : {} });
  return (response.json() as { result: { data: CatalogueEntry[] } }).result.data;
}

describe('models.add refuses, naming the check', () => {
  it('a repo the Hub does not have', async () => {
    expect(await refusal(ann, 'mesh/nowhere')).toEqual({
      status: 400,
      check: 'repo',
      message: 'The Hub has no repo mesh/nowhere (or it is private: set HF_TOKEN)',
    });
  });

  it('a gated repo this server may not read', async () => {
    expect(await refusal(ann, 'mesh/gated')).toMatchObject({
      status: 400,
      check: 'access',
      message: expect.stringMatching(/^mesh\/gated is gated: accept the model's conditions/),
    });
  });

  it('an architecture transformers.js does not run for text generation', async () => {
    expect(await refusal(ann, 'mesh/encoder')).toMatchObject({
      status: 400,
      check: 'architecture',
      message: expect.stringMatching(/^mesh\/encoder is a bert: not an architecture/),
    });
  });

  it('no tokenizer, no ONNX weights, or none a WASM device runs', async () => {
    expect(await refusal(ann, 'mesh/no-tokenizer')).toMatchObject({ check: 'tokenizer' });
    expect(await refusal(ann, 'mesh/no-onnx')).toEqual({
      status: 400,
      check: 'onnx',
      message:
        'mesh/no-onnx has no ONNX weights this app can run: it has no onnx/ folder with a model*.onnx graph (q4, q8, int8, uint8, q4f16, fp32, fp16 wanted)',
    });
    expect(await refusal(ann, 'mesh/bnb4-only')).toMatchObject({
      check: 'onnx',
      message: expect.stringContaining('its onnx/ folder has bnb4, none a WASM device runs'),
    });
  });

  it('no license on the model card', async () => {
    expect(await refusal(ann, 'mesh/no-license')).toEqual({
      status: 400,
      check: 'license',
      message: 'The model card of mesh/no-license names no license (a "license:" line in its README front matter)',
    });
  });

  it('a repo outside MODEL_ADD_REPO_PATTERN, and text that is no repo id', async () => {
    expect(await refusal(ann, 'other/outside')).toEqual({
      status: 403,
      check: 'pattern',
      message: 'This server adds only repos matching ^mesh/; other/outside does not',
    });
    const bad = await add(ann, { repo: 'https://example.com/mesh/tiny-chat' });
    expect(bad.status).toBe(400);
    expect(bad.error?.message).toContain('Expected a Hub repo id (owner/name) or its huggingface.co URL');
  });

  it('the Hub rate-limiting this server', async () => {
    fixture.hub.rateLimit(120);
    expect(await refusal(ann, 'mesh/many-dtypes')).toEqual({
      status: 400,
      check: 'rate',
      message: 'The Hub is rate-limiting this server; try again in 120 s',
    });
  });

  it('a guest, and an account asking for everyone without being an operator', async () => {
    const guest = await fixture.app.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {} });
    const guestCookie = String(guest.headers['set-cookie']).split(';')[0] ?? '';
    expect((await add(guestCookie, { repo: 'mesh/tiny-chat' })).status).toBe(403);
    const answer = await add(bob, { repo: 'mesh/tiny-chat', forEveryone: true });
    expect(answer).toMatchObject({ status: 403, error: { data: { check: 'input' } } });
  });
});

describe('an added model', () => {
  it('shows its size per dtype and the dtype each backend runs', async () => {
    const answer = await add(ann, { repo: 'https://huggingface.co/mesh/many-dtypes/tree/main' });
    expect(answer.status).toBe(200);
    // Shared files: config.json, tokenizer.json, tokenizer_config.json (no generation_config.json here).
    const shared = llama.size + 2 * 2;
    expect(answer.data?.sizes).toEqual([
      { dtype: 'fp32', bytes: 4000 + shared },
      { dtype: 'q8', bytes: 1500 + shared },
      { dtype: 'q4', bytes: 1000 + shared },
      { dtype: 'q4f16', bytes: 700 + shared },
    ]);
    expect(answer.data?.entry).toMatchObject({
      id: 'mesh--many-dtypes',
      repo: 'mesh/many-dtypes',
      revision: 'main',
      dtype: { webgpu: 'q4f16', wasm: 'q4' },
      contextLength: 4096,
      license: 'mit',
    });
    expect(answer.data?.commit).toMatch(/^[0-9a-f]{40}$/);
  });

  it('is in the catalogue of the account that added it only', async () => {
    expect((await catalogue(ann)).find((e) => e.id === 'mesh--many-dtypes')).toMatchObject({
      addedBy: 'you',
      serverStatus: 'remote',
    });
    expect((await catalogue(bob)).find((e) => e.id === 'mesh--many-dtypes')).toBeUndefined();
    expect((await catalogue()).find((e) => e.id === 'mesh--many-dtypes')).toBeUndefined();
    expect((await fixture.askDownload({ id: 'mesh--many-dtypes' }, bob)).statusCode).toBe(404);
  });

  it('is not added twice, and an account holds at most MODELS_ADDED_PER_ACCOUNT', async () => {
    expect(await refusal(ann, 'mesh/many-dtypes')).toMatchObject({ status: 409, check: 'duplicate' });
    expect((await add(ann, { repo: 'mesh/cap-a' })).status).toBe(200);
    expect(await refusal(ann, 'mesh/cap-b')).toEqual({
      status: 429,
      check: 'limit',
      message: 'An account adds at most 2 models (MODELS_ADDED_PER_ACCOUNT); remove one first',
    });
    const forgot = await fixture.app.inject({
      method: 'POST',
      url: '/api/trpc/models.forget',
      payload: { id: 'mesh--cap-a' },
      headers: { cookie: ann },
    });
    expect(forgot.statusCode).toBe(200);
    expect((await add(ann, { repo: 'mesh/cap-b' })).status).toBe(200);
  });

  it('an operator adds for everyone', async () => {
    expect((await add(keeper, { repo: 'mesh/cap-c', forEveryone: true })).status).toBe(200);
    expect((await catalogue(bob)).find((e) => e.id === 'mesh--cap-c')).toMatchObject({ addedBy: 'operator' });
    expect((await catalogue()).find((e) => e.id === 'mesh--cap-c')).toMatchObject({ addedBy: 'operator' });
  });

  it('downloads its WASM dtype and loads and answers from the server', async () => {
    const added = await add(bob, { repo: 'mesh/tiny-chat' });
    expect(added.data?.entry.dtype).toEqual({ webgpu: 'fp32', wasm: 'fp32' });
    const id = added.data?.entry.id ?? '';
    await fixture.download({ id, backend: 'wasm' }, bob);
    const status = await fixture.app.models.downloader.status(id, 'fp32');
    expect(status).toMatchObject({ phase: 'ready', error: null });
    const entry = (await catalogue(bob)).find((e) => e.id === id);
    expect(entry?.downloads).toHaveLength(1);
    const download = entry?.downloads[0];
    // The files are bob's alone: the engine carries bob's session, as a headless peer carries its own.
    const engine = new InferenceEngine({
      modelHost: `${fixture.origin}/models/`,
      cacheDir: path.join(fixture.dir, 'engine-cache'),
      headers: () => ({ cookie: bob }),
    });
    const info = await engine.load(
      {
        id,
        repo: 'mesh/tiny-chat',
        revision: download?.revision ?? '',
        dtype: entry?.dtype ?? { webgpu: 'fp32', wasm: 'fp32' },
        files: download?.files.map((f) => f.path) ?? [],
        contextLength: entry?.contextLength ?? 256,
      },
      'auto',
      () => {},
    );
    expect(info).toMatchObject({ model: id, dtype: 'fp32' });
    const answer = await engine.generate(
      [{ role: 'user', content: 'hi' }],
      { temperature: 0, topP: 1, maxNewTokens: 4 },
      () => {},
    );
    expect(answer.completionTokens).toBeGreaterThan(0);
    await engine.unload();
  }, 120_000);

  it('has its files served only to the sessions whose catalogue shows it: its adder, or everyone once an operator adds it for everyone', async () => {
    const entry = (await catalogue(bob)).find((e) => e.id === 'mesh--tiny-chat');
    const revision = entry?.downloads[0]?.revision ?? '';
    expect(revision).toMatch(/^[0-9a-f]{40}$/);
    const fetchFile = async (cookie?: string, at = revision) => {
      const response = await fixture.app.inject({
        url: `/models/mesh/tiny-chat/resolve/${at}/onnx/model.onnx`,
        headers: cookie ? { cookie } : {},
      });
      return {
        status: response.statusCode,
        cache: response.headers['cache-control'],
        // A refusal's code; a file's bytes are no JSON.
        error: response.statusCode === 404 ? response.json<{ error?: string }>().error : undefined,
      };
    };
    const guest = await fixture.app.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {} });
    const guestCookie = String(guest.headers['set-cookie']).split(';')[0] ?? '';
    // No session, a guest, another account: as if the server held nothing of it.
    for (const cookie of [undefined, guestCookie, ann, 'mesh_session=forged.token']) {
      expect(await fetchFile(cookie)).toMatchObject({ status: 404, error: 'NOT_CACHED' });
    }
    // Its adder, for its browser's cache only, never a shared cache in front of the server.
    expect(await fetchFile(bob)).toMatchObject({ status: 200, cache: 'private, max-age=31536000, immutable' });
    expect(await fetchFile(bob, 'main')).toMatchObject({ status: 200, cache: 'private, no-cache' });

    // An operator adds it for everyone: anyone may have it (a guest's catalogue shows it), and shared caches may keep it.
    expect((await add(keeper, { repo: 'mesh/tiny-chat', forEveryone: true })).status).toBe(200);
    for (const cookie of [undefined, guestCookie, ann, bob]) {
      expect(await fetchFile(cookie)).toMatchObject({ status: 200, cache: 'public, max-age=31536000, immutable' });
    }
    // Taken out of every catalogue, it is served to no one, though its files stay in the cache.
    for (const cookie of [keeper, bob]) {
      const forgot = await fixture.app.inject({
        method: 'POST',
        url: '/api/trpc/models.forget',
        payload: { id: 'mesh--tiny-chat' },
        headers: { cookie },
      });
      expect(forgot.statusCode).toBe(200);
    }
    expect(await fetchFile(bob)).toMatchObject({ status: 404, error: 'NOT_CACHED' });
    expect(
      await fixture.app.models.downloader.cachedFile('mesh/tiny-chat', revision, 'onnx/model.onnx'),
    ).not.toBeNull();
  });

  it('runs q4f16 on WASM when the repo has no integer weights: that file only is fetched, and answers right', async () => {
    const dee = await signUpInjected(fixture.app, 'dee');
    const added = await add(dee, { repo: 'mesh/q4f16-only' });
    expect(added.data?.entry.dtype).toEqual({ webgpu: 'q4f16', wasm: 'q4f16' });
    const id = added.data?.entry.id ?? '';
    // What a device without WebGPU asks for: the WASM dtype's files, as transformers.js requests them.
    await fixture.download({ id, backend: 'wasm' }, dee);
    expect(await fixture.app.models.downloader.status(id, 'q4f16')).toMatchObject({ phase: 'ready', error: null });
    const download = (await catalogue(dee)).find((e) => e.id === id)?.downloads[0];
    expect(download?.dtype).toBe('q4f16');
    expect(download?.files.map((f) => f.path).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'onnx/model_q4f16.onnx',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    // onnxruntime-node on the CPU, the WASM dtype as the engine takes it in Node: the reference forward pass's tokens.
    const messages = [{ role: 'user' as const, content: 'Now is the winter of our discontent' }];
    const reference = await referenceTokens(path.join(fixture.dir, 'exports'), q4f16, messages, 8);
    const engine = new InferenceEngine({
      modelHost: `${fixture.origin}/models/`,
      cacheDir: path.join(fixture.dir, 'engine-cache-q4f16'),
      headers: () => ({ cookie: dee }),
    });
    try {
      const info = await engine.load(
        {
          id,
          repo: 'mesh/q4f16-only',
          revision: download?.revision ?? '',
          dtype: { webgpu: 'q4f16', wasm: 'q4f16' },
          files: download?.files.map((f) => f.path) ?? [],
          contextLength: added.data?.entry.contextLength ?? 512,
        },
        'wasm',
        () => {},
      );
      expect(info).toMatchObject({ model: id, backend: 'cpu', dtype: 'q4f16' });
      const answer = await engine.generate(messages, { temperature: 0, topP: 1, maxNewTokens: 8 }, () => {});
      expect(answer.tokenIds).toEqual(reference.tokens);
    } finally {
      await engine.unload();
    }
  }, 120_000);
});
