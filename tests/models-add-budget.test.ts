// models.add against its hourly budget (MODEL_ADDS_PER_USER_PER_HOUR, per account and, COSTLY_IP_FACTOR times as
// large, per address: src/server/services/budgets.ts; docs/SECURITY.md): every attempt spends it, refused ones too,
// so failed checks cannot hammer the Hub; once spent, models.add answers 429 with Retry-After and a message naming
// the budget, before asking the Hub anything. (MODELS_ADDED_PER_ACCOUNT, the count an account holds:
// tests/models-add.test.ts.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent, generatedContent } from '../scripts/fake-hub.ts';
import { buildApp } from '../src/server/app.ts';
import type { CatalogueEntry } from '../src/shared/schemas/models.ts';
import { signUpInjected } from './support/accounts.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

let dir: string;
let hub: FakeHub;
let db: TestDatabase;
let app: FastifyInstance;
const cookies: Record<'ann' | 'bob' | 'cyd', string> = {} as never;

const REPOS = ['a', 'b', 'c', 'd', 'e'].map((name) => `mesh/budget-${name}`);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-models-add-budget-'));
  hub = new FakeHub();
  await hub.start();
  for (const repo of REPOS) {
    await hub.addRepo(repo, {
      'config.json': bufferContent(JSON.stringify({ model_type: 'llama', max_position_embeddings: 2048 })),
      'tokenizer.json': bufferContent('{}'),
      'tokenizer_config.json': bufferContent('{}'),
      'onnx/model_q4.onnx': generatedContent(10, 1),
      'README.md': bufferContent('---\nlicense: mit\n---\n'),
    });
  }
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      HF_ENDPOINT: hub.origin,
      MODEL_CACHE_DIR: path.join(dir, 'cache'),
      MODEL_ADDS_PER_USER_PER_HOUR: '2',
      // Two accounts' worth from one address: the third account behind it meets the address's budget.
      COSTLY_IP_FACTOR: '2',
    }),
    database: db.database,
  });
  for (const name of ['ann', 'bob', 'cyd'] as const) cookies[name] = await signUpInjected(app, name);
}, 120_000);

afterAll(async () => {
  await app?.close();
  await db?.cleanup();
  await hub?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function add(cookie: string, repo: string) {
  const response = await app.inject({
    method: 'POST',
    url: '/api/trpc/models.add',
    payload: { repo },
    headers: { cookie },
  });
  const body = response.json() as { error?: { message: string; data: { code: string } } };
  return {
    status: response.statusCode,
    retryAfter: response.headers['retry-after'],
    code: body.error?.data.code,
    message: body.error?.message,
  };
}

const asked = (repo: string) => hub.requests.filter((request) => request.path.includes(repo)).length;

async function catalogueIds(cookie: string): Promise<string[]> {
  const response = await app.inject({ url: '/api/trpc/manifest.list', headers: { cookie } });
  return (response.json() as { result: { data: CatalogueEntry[] } }).result.data.map((entry) => entry.id);
}

describe('models.add past its budget', () => {
  it('counts refused attempts too, then refuses with 429, Retry-After and the budget named, asking the Hub nothing', async () => {
    expect((await add(cookies.ann, 'mesh/budget-a')).status).toBe(200);
    // A refused check (no such repo) spends the budget as well: it cost the Hub a request.
    expect(await add(cookies.ann, 'mesh/nowhere')).toMatchObject({ status: 400 });
    const refused = await add(cookies.ann, 'mesh/budget-b');
    expect(refused).toMatchObject({
      status: 429,
      code: 'TOO_MANY_REQUESTS',
      message: expect.stringMatching(/^Too many models added by repo id: at most 2 per hour; retry in \d+ s$/),
    });
    const wait = Number(refused.retryAfter);
    expect(wait).toBeGreaterThan(3000);
    expect(wait).toBeLessThanOrEqual(3600);
    expect(refused.message).toContain(`retry in ${wait} s`);
    expect(asked('mesh/budget-b')).toBe(0);
    expect(await catalogueIds(cookies.ann)).toContain('mesh--budget-a');
    expect(await catalogueIds(cookies.ann)).not.toContain('mesh--budget-b');
  });

  it('is one account’s: another account adds until the address’s budget (COSTLY_IP_FACTOR times) is spent', async () => {
    expect((await add(cookies.bob, 'mesh/budget-b')).status).toBe(200);
    expect((await add(cookies.bob, 'mesh/budget-c')).status).toBe(200);
    // Ann's two and Bob's two are the address's four.
    const refused = await add(cookies.cyd, 'mesh/budget-d');
    expect(refused).toMatchObject({
      status: 429,
      message: expect.stringMatching(
        /^Too many models added by repo id from this address: at most 4 per hour; retry in \d+ s$/,
      ),
    });
    expect(asked('mesh/budget-d')).toBe(0);
    expect(await catalogueIds(cookies.bob)).toEqual(expect.arrayContaining(['mesh--budget-b', 'mesh--budget-c']));
    expect(await catalogueIds(cookies.cyd)).not.toContain('mesh--budget-d');
  });
});
