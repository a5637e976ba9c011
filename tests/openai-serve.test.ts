// SERVE_MODELS: the server loads a catalogue model itself (onnxruntime-node) and shares it into the global room, so
// the official `openai` client gets answers with no browser or peer open; GET /v1/models says the server owns it,
// and its greedy answer is the one the engine gives on its own. The job records the server writes for a key's mesh
// jobs spend its account's JOB_RECORDS_PER_MINUTE, the budget the app's jobs.* calls spend.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { createApiKey } from '../src/server/services/api-keys.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { nanoEngineModel } from './support/model-fixtures.ts';

const MODEL = 'nano-shakespeare';
let dir: string;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let client: OpenAI;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-serve-'));
  db = await openTestDatabase('pglite');
  app = await buildApp({
    // Two job records a minute per account (one job's start and finish), and an address budget out of the way.
    env: testEnv({
      DATA_DIR: path.join(dir, 'data'),
      SERVE_MODELS: MODEL,
      JOB_RECORDS_PER_MINUTE: '2',
      COSTLY_IP_FACTOR: '1000',
    }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  const user = await db.database.prisma.user.create({
    data: { kind: 'ACCOUNT', username: 'serveapi', displayName: 'serveapi' },
    select: { id: true },
  });
  const key = (await createApiKey(db.database.prisma, user.id, 'key')).key;
  client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await db?.cleanup();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

it('refuses a SERVE_MODELS id the catalogue does not have, at start', async () => {
  await expect(
    buildApp({
      env: testEnv({ DATA_DIR: path.join(dir, 'other'), SERVE_MODELS: 'no-such-model' }),
      database: db.database,
    }),
  ).rejects.toThrow(/SERVE_MODELS names models the catalogue does not have: no-such-model/);
});

it('answers on the server’s own model, whole and streamed, as the engine does alone', async () => {
  const own = async () => {
    for await (const model of client.models.list()) if (model.id === MODEL) return model.owned_by;
    return null;
  };
  await expect.poll(own, { timeout: 60_000 }).toBe('server');
  const request = {
    model: MODEL,
    messages: [{ role: 'user' as const, content: 'JULIET:' }],
    temperature: 0,
    seed: 3,
    max_tokens: 32,
  };
  const whole = (await client.chat.completions.create(request)).choices[0]?.message.content ?? '';
  let streamed = '';
  for await (const chunk of await client.chat.completions.create({ ...request, stream: true }))
    streamed += chunk.choices[0]?.delta.content ?? '';
  expect(streamed).toBe(whole);

  const engine = new InferenceEngine({ modelHost: `${base}/models/`, cacheDir: path.join(dir, 'alone') });
  await engine.load(await nanoEngineModel(), 'auto', () => {});
  const alone = await engine.generate(
    request.messages,
    { temperature: 0, topP: 0.95, maxNewTokens: 32, seed: 3 },
    () => {},
  );
  await engine.unload();
  expect(whole).toBe(alone.text);
}, 120_000);

it('writes a /v1 job’s records on the account’s JOB_RECORDS_PER_MINUTE, the budget its jobs.* calls spend', async () => {
  // An account with a session (for jobs.*) and a key (for /v1).
  const signup = await fetch(`${base}/api/trpc/auth.signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'records', password: 'correct horse battery' }),
  });
  expect(signup.status).toBe(200);
  const cookie = (signup.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const { id: userId } = await db.database.prisma.user.findUniqueOrThrow({
    where: { username: 'records' },
    select: { id: true },
  });
  const keyed = new OpenAI({
    apiKey: (await createApiKey(db.database.prisma, userId, 'key')).key,
    baseURL: `${base}/v1`,
    maxRetries: 0,
  });
  const request = {
    model: MODEL,
    messages: [{ role: 'user' as const, content: 'ROMEO:' }],
    temperature: 0,
    max_tokens: 8,
  };
  await expect
    .poll(async () => (await keyed.models.list()).data.some((m) => m.id === MODEL), { timeout: 60_000 })
    .toBe(true);
  expect((await keyed.chat.completions.create(request)).usage?.completion_tokens).toBe(8);
  // Its start and finish are written once the answer is out: the account's two records of the minute.
  await expect
    .poll(() => db.database.prisma.inferenceJob.findMany({ where: { requesterId: userId }, select: { outcome: true } }))
    .toEqual([{ outcome: 'COMPLETED' }]);
  const started = await fetch(`${base}/api/trpc/jobs.start`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({
      room: 'global',
      serverPeerId: '00000000-0000-4000-8000-000000000000',
      model: { id: MODEL, sha256: 'a'.repeat(64) },
    }),
  });
  expect(started.status).toBe(429);
  // The account's own budget (not the address's), spent by the /v1 job's records.
  expect(await started.json()).toMatchObject({
    error: { message: expect.stringMatching(/^Too many job records: at most 2 per minute; retry in \d+ s$/) },
  });
  // Past the budget a /v1 answer still comes: a refused record does not hold it back.
  expect((await keyed.chat.completions.create(request)).usage?.completion_tokens).toBe(8);
}, 120_000);
