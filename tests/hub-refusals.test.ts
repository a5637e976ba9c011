// The Hub's refusals reach the person as clear messages through models.status (docs/SECURITY.md, the download
// proxy): a gated repo, a missing repo, revision or file, and a rate limit with a long Retry-After.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent } from '../scripts/fake-hub.ts';
import { buildApp } from '../src/server/app.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { signUpInjected } from './support/accounts.ts';
import { testEnv } from './support/env.ts';

let dir: string;
let hub: FakeHub;
let db: TestDatabase;
let app: FastifyInstance;
let cookie: string;

const entry = (id: string, repo: string, revision = 'main', files = [{ path: 'config.json' }]) => ({
  id,
  name: id,
  repo,
  revision,
  task: 'text-generation',
  dtype: { webgpu: 'q4', wasm: 'q4' },
  contextLength: 256,
  license: 'mit',
  files,
});

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-hub-refusals-'));
  hub = new FakeHub();
  await hub.start();
  await hub.addRepo('mesh/gated', { 'config.json': bufferContent('{}') });
  hub.gate('mesh/gated', ['someone-else']);
  // The catalogue lists each repo once: one open repo per case.
  for (const name of ['revision', 'file', 'dtype', 'limited']) {
    await hub.addRepo(`mesh/open-${name}`, {
      'config.json': bufferContent('{}'),
      'tokenizer.json': bufferContent('{}'),
    });
  }
  await writeFile(
    path.join(dir, 'manifest.json'),
    JSON.stringify({
      mode: 'replace',
      models: [
        entry('gated', 'mesh/gated'),
        entry('no-repo', 'mesh/nowhere'),
        entry('no-revision', 'mesh/open-revision', 'v2'),
        entry('no-file', 'mesh/open-file', 'main', [{ path: 'tokenizer.json' }, { path: 'onnx/model_q4.onnx' }]),
        // Lists no files: derived as transformers.js picks them, and the repo has no q4 graph.
        { ...entry('no-dtype', 'mesh/open-dtype'), files: [] },
        entry('limited', 'mesh/open-limited'),
      ],
    }),
  );
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: path.join(dir, 'manifest.json'),
      MODEL_CACHE_DIR: path.join(dir, 'cache'),
      DOWNLOAD_DISK_MARGIN_BYTES: '0',
    }),
    database: db.database,
  });
  await app.ready();
  cookie = await signUpInjected(app, 'refused');
});

afterAll(async () => {
  await app?.close();
  await db?.cleanup();
  await hub?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function failure(id: string) {
  const started = await app.inject({
    method: 'POST',
    url: '/api/trpc/models.download',
    payload: { id },
    headers: { cookie },
  });
  expect(started.statusCode).toBe(200);
  await app.models.downloader.settled(id);
  const status = await app.inject(`/api/trpc/models.status?input=${encodeURIComponent(JSON.stringify({ id }))}`);
  const body = status.json() as {
    result: { data: { phase: string; error: { code: string; message: string } | null } };
  };
  expect(body.result.data.phase).toBe('failed');
  return body.result.data.error;
}

describe("the Hub's refusals, as the person reads them", () => {
  it('a gated repo says to accept its conditions and set HF_TOKEN', async () => {
    expect(await failure('gated')).toEqual({
      code: 'GATED',
      message:
        "mesh/gated is gated: accept the model's conditions on its Hub page, then give this server that account's token as HF_TOKEN",
    });
  });

  it('a missing repo, revision or file is named', async () => {
    expect(await failure('no-repo')).toEqual({
      code: 'NOT_FOUND',
      message: 'The Hub has no repo mesh/nowhere (or it is private: set HF_TOKEN)',
    });
    expect(await failure('no-revision')).toEqual({
      code: 'NOT_FOUND',
      message: 'mesh/open-revision has no revision v2',
    });
    expect((await failure('no-file'))?.message).toMatch(
      /^onnx\/model_q4\.onnx is not in mesh\/open-file at [0-9a-f]{12}$/,
    );
    expect(await failure('no-dtype')).toEqual({
      code: 'NOT_FOUND',
      message: 'The repo has no onnx/model_q4.onnx (it has no onnx/model*.onnx graph)',
    });
  });

  it('a rate limit says when to try again', async () => {
    hub.rateLimit(3600);
    expect(await failure('limited')).toEqual({
      code: 'RATE_LIMITED',
      message: 'The Hub is rate-limiting this server; try again in 3600 s',
    });
  });
});
