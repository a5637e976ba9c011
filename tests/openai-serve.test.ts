// SERVE_MODELS: the server loads a catalogue model itself (onnxruntime-node) and shares it into the global room, so
// the official `openai` client gets answers with no browser or peer open; GET /v1/models says the server owns it,
// and its greedy answer is the one the engine gives on its own.
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
    env: testEnv({ DATA_DIR: path.join(dir, 'data'), SERVE_MODELS: MODEL }),
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
