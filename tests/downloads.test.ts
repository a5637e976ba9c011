// The download proxy against the fake Hub (docs/SECURITY.md).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent, generatedContent } from '../scripts/fake-hub.ts';
import { buildApp } from '../src/server/app.ts';
import type { DownloadStatus } from '../src/server/models/downloader.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { signUpInjected } from './support/accounts.ts';
import { testEnv } from './support/env.ts';

const MODEL_SIZE = 3 * 1024 * 1024 + 123;
const REPO = 'mesh/tiny';
let hub: FakeHub;
let commit: string;
let modelSha: string;
let dir: string;

beforeAll(async () => {
  hub = new FakeHub();
  await hub.start();
  const added = await hub.addRepo(REPO, {
    'config.json': bufferContent(JSON.stringify({ model_type: 'llama', hidden_size: 64 })),
    'tokenizer.json': bufferContent(JSON.stringify({ version: '1.0', model: { type: 'WordLevel' } })),
    'onnx/model.onnx': generatedContent(MODEL_SIZE, 3),
    'empty.txt': bufferContent(''),
  });
  commit = added.commit;
  modelSha = added.files.find((f) => f.path === 'onnx/model.onnx')?.sha256 ?? '';
  await hub.addRepo('mesh/other', {
    'config.json': bufferContent('{}'),
    'onnx/model.onnx': generatedContent(1024 * 1024, 9),
  });
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-downloads-'));
  await writeFile(
    path.join(dir, 'manifest.json'),
    JSON.stringify({
      mode: 'replace',
      models: [
        {
          id: 'tiny',
          name: 'Tiny',
          repo: REPO,
          revision: 'main',
          task: 'text-generation',
          dtype: { webgpu: 'fp32', wasm: 'fp32' },
          contextLength: 256,
          license: 'mit',
          files: [
            { path: 'config.json' },
            { path: 'tokenizer.json' },
            { path: 'onnx/model.onnx' },
            { path: 'empty.txt' },
          ],
        },
        {
          id: 'other',
          name: 'Other',
          repo: 'mesh/other',
          revision: 'main',
          task: 'text-generation',
          dtype: { webgpu: 'fp32', wasm: 'fp32' },
          contextLength: 256,
          license: 'mit',
          files: [{ path: 'config.json' }, { path: 'onnx/model.onnx' }],
        },
        {
          id: 'missing',
          name: 'Missing',
          repo: 'mesh/nope',
          revision: 'main',
          task: 'text-generation',
          dtype: { webgpu: 'fp32', wasm: 'fp32' },
          contextLength: 256,
          license: 'mit',
          files: [{ path: 'config.json' }],
        },
      ],
    }),
  );
});
afterAll(async () => {
  await hub.stop();
  await rm(dir, { recursive: true, force: true });
});

let db: TestDatabase;
let app: FastifyInstance;
let cookie: string;
let cacheDir: string;

async function makeApp(overrides: Record<string, string> = {}) {
  return buildApp({
    env: testEnv({
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: path.join(dir, 'manifest.json'),
      MODEL_CACHE_DIR: cacheDir,
      DOWNLOAD_DISK_MARGIN_BYTES: '0',
      DOWNLOAD_STALL_TIMEOUT_MS: '1000',
      OPERATORS: 'keeper',
      ...overrides,
    }),
    database: db.database,
  });
}

beforeEach(async () => {
  hub.reset();
  cacheDir = await mkdtemp(path.join(dir, 'cache-'));
  db = await openTestDatabase('pglite');
  app = await makeApp();
  await app.ready();
  cookie = await signUpInjected(app, 'starter');
});
afterEach(async () => {
  await app.close();
  await db.cleanup();
});

async function call(
  target: FastifyInstance,
  procedure: string,
  input: unknown,
  kind: 'query' | 'mutation' = 'mutation',
) {
  const response =
    kind === 'mutation'
      ? await target.inject({
          method: 'POST',
          url: `/api/trpc/${procedure}`,
          payload: input as object,
          headers: { cookie },
        })
      : await target.inject({
          method: 'GET',
          url: `/api/trpc/${procedure}?input=${encodeURIComponent(JSON.stringify(input))}`,
          headers: { cookie },
        });
  return {
    status: response.statusCode,
    body: response.json() as { result?: { data: unknown }; error?: { data: { code: string } } },
  };
}

async function downloadAndWait(id: string, target = app): Promise<DownloadStatus> {
  const started = await call(target, 'models.download', { id });
  expect(started.status).toBe(200);
  await target.models.downloader.settled(id);
  return (await target.models.downloader.status(id)) as DownloadStatus;
}

const cdnRequests = () => hub.requests.filter((r) => r.path.startsWith('/cdn/'));

describe('the download proxy', () => {
  it('downloads, verifies and serves a model same-origin with Range, ETag and immutable caching', async () => {
    const status = await downloadAndWait('tiny');
    expect(status).toMatchObject({ phase: 'ready', revision: commit, bytesTotal: status.bytesDone, error: null });
    expect(status.files.map((f) => [f.path, f.phase])).toEqual([
      ['config.json', 'ready'],
      ['empty.txt', 'ready'],
      ['onnx/model.onnx', 'ready'],
      ['tokenizer.json', 'ready'],
    ]);
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/empty.txt`)).headers['content-length']).toBe('0');

    const file = await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`);
    expect(file.statusCode).toBe(200);
    expect(file.headers.etag).toBe(`"${modelSha}"`);
    expect(file.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(file.headers['content-length']).toBe(String(MODEL_SIZE));
    expect(createHash('sha256').update(file.rawPayload).digest('hex')).toBe(modelSha);

    const range = await app.inject({
      url: `/models/${REPO}/resolve/${commit}/onnx/model.onnx`,
      headers: { range: 'bytes=100-199' },
    });
    expect(range.statusCode).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes 100-199/${MODEL_SIZE}`);
    expect(range.rawPayload.equals(file.rawPayload.subarray(100, 200))).toBe(true);

    const config = await app.inject(`/models/${REPO}/resolve/main/config.json`);
    expect(config.json()).toMatchObject({ model_type: 'llama' });
    expect(config.headers['cache-control']).toBe('no-cache');
    expect(
      (
        await app.inject({
          url: `/models/${REPO}/resolve/${commit}/config.json`,
          headers: { 'if-none-match': String(config.headers.etag) },
        })
      ).statusCode,
    ).toBe(304);

    const listed = await call(app, 'manifest.list', undefined, 'query');
    expect(listed.body.result?.data).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: 'tiny', serverStatus: 'cached', cachedRevision: commit })]),
    );
  });

  it("follows the Hub's pages of a long file list", async () => {
    hub.treePageSize = 1;
    const status = await downloadAndWait('tiny');
    expect(status.phase).toBe('ready');
    const pages = hub.requests.filter((r) => r.path === `/api/models/${REPO}/tree/${commit}`);
    expect(pages).toHaveLength(4);
  });

  it('answers files that are not cached with a JSON 404', async () => {
    const response = await app.inject(`/models/${REPO}/resolve/main/onnx/model.onnx`);
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ error: 'NOT_CACHED' });
  });

  it('refuses traversal and URL tricks before any network call', async () => {
    for (const url of [
      `/models/${REPO}/resolve/main/../../../etc/passwd`,
      `/models/${REPO}/resolve/main/%2e%2e/%2e%2e/secret`,
      `/models/${REPO}/resolve/main/onnx%5C..%5Cmodel.onnx`,
      `/models/${REPO}/resolve/main//etc/passwd`,
      `/models/${REPO}/resolve/..%2F..%2Fx/config.json`,
      `/models/mesh/..%2F..%2Fdata/resolve/main/config.json`,
      `/models/${REPO}/resolve/main/${'a'.repeat(300)}`,
      `/models/${REPO}/resolve/main/http:%2F%2Fevil.example%2Fx`,
    ]) {
      const response = await app.inject(url);
      expect([400, 404], url).toContain(response.statusCode);
      expect(response.statusCode === 400 || response.json().error === 'NOT_FOUND', url).toBe(true);
    }
    for (const id of ['../tiny', 'https://evil.example/x', 'TINY', '', 'a'.repeat(200), 'not-in-catalogue']) {
      const response = await call(app, 'models.download', { id });
      expect(['BAD_REQUEST', 'NOT_FOUND'], id).toContain(response.body.error?.data.code);
    }
    expect(hub.requests).toEqual([]);
  });

  it('makes one upstream fetch when several people download the same model at once', async () => {
    await Promise.all([1, 2, 3, 4].map(() => call(app, 'models.download', { id: 'tiny' })));
    await app.models.downloader.settled('tiny');
    expect((await app.models.downloader.status('tiny'))?.phase).toBe('ready');
    expect(cdnRequests()).toHaveLength(1);
    expect(hub.requests.filter((r) => r.path.endsWith('/config.json'))).toHaveLength(1);
    // Already cached: asking again fetches nothing.
    await downloadAndWait('tiny');
    expect(cdnRequests()).toHaveLength(1);
  });

  it('needs an account to start a download: a guest is refused with a clear message, and nothing is fetched', async () => {
    const anonymous = await app.inject({ method: 'POST', url: '/api/trpc/models.download', payload: { id: 'tiny' } });
    expect(anonymous.statusCode).toBe(401);
    const guest = await app.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {} });
    cookie = String(guest.headers['set-cookie']).split(';')[0] ?? '';
    const refused = await call(app, 'models.download', { id: 'tiny' });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({
      message: 'Downloading a model to the server needs an account: sign up, then try again',
      data: { code: 'FORBIDDEN' },
    });
    expect(await app.models.downloader.status('tiny')).toBeNull();
    expect(hub.requests).toEqual([]);
  });

  it('spends DOWNLOADS_PER_USER_PER_HOUR on each start', async () => {
    await app.close();
    app = await makeApp({ DOWNLOADS_PER_USER_PER_HOUR: '2' });
    cookie = await signUpInjected(app, 'hurried');
    expect((await call(app, 'models.download', { id: 'tiny' })).status).toBe(200);
    expect((await call(app, 'models.download', { id: 'tiny' })).status).toBe(200);
    expect((await call(app, 'models.download', { id: 'tiny' })).body.error?.data.code).toBe('TOO_MANY_REQUESTS');
    await app.models.downloader.settled('tiny');
  });

  it('reports a model missing on the Hub clearly', async () => {
    const status = await downloadAndWait('missing');
    expect(status.phase).toBe('failed');
    expect(status.error).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('the download proxy under faults', () => {
  it.each([
    ['a loopback address', 'http://127.0.0.2:9/x'],
    ['a private address', 'http://10.0.0.1/x'],
    ['the cloud metadata address', 'http://169.254.169.254/latest/meta-data'],
    ['plain http on a public host', 'http://93.184.216.34/x'],
    ['an https name that resolves to loopback', 'https://localhost:1/x'],
    ['an IPv6 loopback', 'https://[::1]:1/x'],
  ])('refuses a redirect to %s without connecting to it', async (_label, location) => {
    hub.injectFault('onnx/model.onnx', { kind: 'redirect', location });
    const status = await downloadAndWait('tiny');
    expect(status.phase).toBe('failed');
    expect(status.error?.code).toBe('FORBIDDEN_REDIRECT');
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`)).statusCode).toBe(404);
  });

  it('stops after a few redirects', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'redirect-loop' }, 20);
    const status = await downloadAndWait('tiny');
    expect(status.error?.code).toBe('TOO_MANY_REDIRECTS');
  });

  it('aborts a file that sends more bytes than declared, and serves nothing', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'oversize', extra: 4096 });
    const status = await downloadAndWait('tiny');
    expect(status.error?.code).toBe('SIZE_MISMATCH');
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`)).statusCode).toBe(404);
  });

  it('gives HASH_MISMATCH for a flipped byte, deletes the corrupt copy and never serves it', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'flip', atByte: 1_000_000 });
    const status = await downloadAndWait('tiny');
    expect(status.error).toMatchObject({ code: 'HASH_MISMATCH' });
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`)).statusCode).toBe(404);
    const parts = await readdir(path.join(cacheDir, '.partial', REPO, commit, 'onnx')).catch(() => []);
    expect(parts).toEqual([]);
    // A later, clean attempt succeeds.
    expect((await downloadAndWait('tiny')).phase).toBe('ready');
  });

  it('resumes a dropped connection with Range', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'drop', atByte: 1_500_000 });
    const status = await downloadAndWait('tiny');
    expect(status.phase).toBe('ready');
    expect(cdnRequests().map((r) => r.range)).toEqual([undefined, 'bytes=1500000-']);
    const file = await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`);
    expect(createHash('sha256').update(file.rawPayload).digest('hex')).toBe(modelSha);
  });

  it('restarts the file cleanly when a Range request is answered with 200', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'drop', atByte: 1_000_000 });
    hub.injectFault('onnx/model.onnx', { kind: 'ignore-range' });
    const status = await downloadAndWait('tiny');
    expect(status.phase).toBe('ready');
    expect(cdnRequests().map((r) => r.range)).toEqual([undefined, 'bytes=1000000-']);
    const file = await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`);
    expect(file.rawPayload.length).toBe(MODEL_SIZE);
    expect(createHash('sha256').update(file.rawPayload).digest('hex')).toBe(modelSha);
  });

  it('resumes after a stall', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'stall', atByte: 2_000_000 });
    const status = await downloadAndWait('tiny');
    expect(status.phase).toBe('ready');
    expect(cdnRequests().map((r) => r.range)).toEqual([undefined, 'bytes=2000000-']);
  });

  it('checks free disk space before starting', async () => {
    await app.close();
    app = await makeApp({ DOWNLOAD_DISK_MARGIN_BYTES: String(Number.MAX_SAFE_INTEGER) });
    const status = await downloadAndWait('tiny');
    expect(status.error?.code).toBe('DISK_FULL');
    expect(status.error?.message).toMatch(/free/);
    expect(cdnRequests()).toEqual([]);
  });

  it('says DISK_FULL when the disk fills up mid-file, keeping nothing half-saved in the cache', async () => {
    // The file's .part is /dev/full: every write fails with ENOSPC, as on a full disk.
    const part = path.join(cacheDir, '.partial', REPO, commit, 'onnx', 'model.onnx.part');
    await mkdir(path.dirname(part), { recursive: true });
    await symlink('/dev/full', part);
    const status = await downloadAndWait('tiny');
    expect(status.error).toMatchObject({
      code: 'DISK_FULL',
      message: expect.stringMatching(/disk filled up while saving onnx\/model\.onnx; free some space/),
    });
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`)).statusCode).toBe(404);
    await rm(part, { force: true });
    expect((await downloadAndWait('tiny')).phase).toBe('ready');
  });

  it('caps concurrent downloads, queueing the rest', async () => {
    await app.close();
    app = await makeApp({ DOWNLOAD_CONCURRENCY: '1', DOWNLOAD_STALL_TIMEOUT_MS: '3000' });
    hub.injectFault('onnx/model.onnx', { kind: 'stall', atByte: 500_000 });
    await call(app, 'models.download', { id: 'tiny' });
    await call(app, 'models.download', { id: 'other' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await app.models.downloader.status('other'))?.phase).toBe('queued');
    await app.models.downloader.settled('tiny');
    await app.models.downloader.settled('other');
    expect((await app.models.downloader.status('tiny'))?.phase).toBe('ready');
    expect((await app.models.downloader.status('other'))?.phase).toBe('ready');
  });

  it('resumes with Range after the server restarts mid-file', async () => {
    await app.close();
    app = await makeApp({ DOWNLOAD_STALL_TIMEOUT_MS: '60000' });
    hub.injectFault('onnx/model.onnx', { kind: 'stall', atByte: 1_234_567 });
    await call(app, 'models.download', { id: 'tiny' });
    while (
      ((await app.models.downloader.status('tiny'))?.files.find((f) => f.path === 'onnx/model.onnx')?.bytesDone ?? 0) <
      1_234_567
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await app.close(); // shutdown keeps the partial file and the record's phase
    expect(
      (await db.database.prisma.modelDownload.findUnique({ where: { modelId_dtype: { modelId: 'tiny', dtype: '*' } } }))
        ?.phase,
    ).toBe('DOWNLOADING');

    app = await makeApp();
    await app.ready(); // queues the interrupted download again
    let phase: string | undefined;
    while (
      !['ready', 'failed', 'cancelled'].includes((phase = (await app.models.downloader.status('tiny'))?.phase) ?? '')
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(phase).toBe('ready');
    expect(cdnRequests().map((r) => r.range)).toEqual([undefined, 'bytes=1234567-']);
    const file = await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`);
    expect(createHash('sha256').update(file.rawPayload).digest('hex')).toBe(modelSha);
  });

  it('cancels a download and removes its partial files; remove deletes a cached model', async () => {
    await app.close();
    app = await makeApp({ DOWNLOAD_STALL_TIMEOUT_MS: '60000' });
    hub.injectFault('onnx/model.onnx', { kind: 'stall', atByte: 700_000 });
    await call(app, 'models.download', { id: 'tiny' });
    // Cancelled once the weights' request has met the stall (the fault is used up then): cancelled earlier, the
    // stall would be waiting for the download below instead.
    await expect
      .poll(() => cdnRequests().some((r) => r.path.endsWith('onnx/model.onnx')), { timeout: 20_000 })
      .toBe(true);
    expect((await call(app, 'models.cancel', { id: 'tiny' })).body.result?.data).toEqual({ cancelled: true });
    expect((await app.models.downloader.status('tiny'))?.phase).toBe('cancelled');
    expect(await readdir(path.join(cacheDir, '.partial', REPO)).catch(() => [])).toEqual([]);

    expect((await downloadAndWait('tiny')).phase).toBe('ready');
    cookie = await signUpInjected(app, 'keeper');
    expect((await call(app, 'models.remove', { id: 'tiny' })).body.result?.data).toEqual({ removed: true });
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/config.json`)).statusCode).toBe(404);
    expect(await readdir(path.join(cacheDir, REPO))).toEqual([]);
  });
});

describe('the downloader', () => {
  it('starts once when called many times in the same tick', async () => {
    const entry = app.models.manifest.find((m) => m.id === 'tiny');
    if (!entry) throw new Error('tiny is not in the test catalogue');
    const statuses = await Promise.all(Array.from({ length: 8 }, () => app.models.downloader.start(entry)));
    expect(new Set(statuses).size).toBe(1);
    await app.models.downloader.settled('tiny');
    expect((await app.models.downloader.status('tiny'))?.phase).toBe('ready');
    expect(cdnRequests()).toHaveLength(1);
  });
});

describe('the cache', () => {
  it('is re-verified and reused when the database changes but the cache directory is kept', async () => {
    expect((await downloadAndWait('tiny')).phase).toBe('ready');
    await app.close();
    await db.cleanup();
    db = await openTestDatabase('pglite');
    app = await makeApp();
    cookie = await signUpInjected(app, 'starter');
    hub.reset();
    expect((await downloadAndWait('tiny')).phase).toBe('ready');
    expect(cdnRequests()).toEqual([]); // nothing fetched again
    const file = await app.inject(`/models/${REPO}/resolve/${commit}/onnx/model.onnx`);
    expect(file.headers.etag).toBe(`"${modelSha}"`);
  });

  it('lets only the person who started a download, or an operator, cancel it', async () => {
    await app.close();
    app = await makeApp({ DOWNLOAD_STALL_TIMEOUT_MS: '60000' });
    hub.injectFault('onnx/model.onnx', { kind: 'stall', atByte: 700_000 });
    expect((await call(app, 'models.download', { id: 'tiny' })).status).toBe(200);
    cookie = await signUpInjected(app, 'bystander');
    expect((await call(app, 'models.cancel', { id: 'tiny' })).body.error?.data.code).toBe('FORBIDDEN');
    cookie = await signUpInjected(app, 'keeper');
    expect((await call(app, 'models.cancel', { id: 'tiny' })).body.result?.data).toEqual({ cancelled: true });
  });

  it('removes a cached model only for an operator (OPERATORS), not even for the account that downloaded it', async () => {
    expect((await downloadAndWait('tiny')).phase).toBe('ready');
    const refused = await call(app, 'models.remove', { id: 'tiny' });
    expect(refused.body.error).toMatchObject({
      message: 'Only an operator of this server can remove a model from its cache',
      data: { code: 'FORBIDDEN' },
    });
    const guest = await app.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {} });
    cookie = String(guest.headers['set-cookie']).split(';')[0] ?? '';
    expect((await call(app, 'models.remove', { id: 'tiny' })).body.error?.data.code).toBe('FORBIDDEN');
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/config.json`)).statusCode).toBe(200);

    cookie = await signUpInjected(app, 'keeper');
    expect((await call(app, 'models.remove', { id: 'tiny' })).body.result?.data).toEqual({ removed: true });
    expect((await app.inject(`/models/${REPO}/resolve/${commit}/config.json`)).statusCode).toBe(404);
  });
});
