// Many /v1 mesh streams from one key at once, with the official `openai` client: the server's member of the room asks
// each serving peer for as many jobs as it takes from one requester and keeps the rest waiting in order
// (MESH_API_WAIT_MS), so every stream is answered, and the same as alone; one past MESH_API_STREAMS_PER_USER is
// refused with 429 and a retry-after in OpenAI's shape.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { buildApp } from '../src/server/app.ts';
import { createApiKey } from '../src/server/services/api-keys.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

const MODEL = 'nano-shakespeare';
const STREAMS = 16;
let dir: string;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let client: OpenAI;
let userId: string;
const peers: HeadlessPeer[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-openai-load-'));
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      DATA_DIR: path.join(dir, 'data'),
      MESH_API_STREAMS_PER_USER: String(STREAMS),
      // Every stream waits its turn here; the machine running the tests may be slow.
      MESH_API_WAIT_MS: '50000',
      // They all come from 127.0.0.1: let them all reach the route at once.
      REQUESTS_IN_FLIGHT_PER_IP: '64',
    }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  const user = await db.database.prisma.user.create({
    data: { kind: 'ACCOUNT', username: 'loadapi', displayName: 'loadapi' },
    select: { id: true },
  });
  userId = user.id;
  client = new OpenAI({
    apiKey: (await createApiKey(db.database.prisma, user.id, 'key')).key,
    baseURL: `${base}/v1`,
    maxRetries: 0,
  });
  for (const name of ['Ash', 'Bay']) {
    const peer = new HeadlessPeer({
      server: base,
      room: 'global',
      model: MODEL,
      name,
      cacheDir: path.join(dir, 'cache', name),
      threads: 1,
    });
    peers.push(peer);
    await peer.start();
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.stop()));
  await app?.close();
  await db?.cleanup();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

const greedy = {
  model: MODEL,
  messages: [{ role: 'user' as const, content: 'JULIET:' }],
  temperature: 0,
  seed: 3,
  max_tokens: 48,
};

async function streamed(): Promise<string> {
  const stream = await client.chat.completions.create({ ...greedy, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

it(`answers ${STREAMS} concurrent streams from one key through two peers, each as alone, and refuses one more with 429`, async () => {
  // Alone first (this also has the server's member join the room and meet both peers).
  const alone = await streamed();
  expect(alone.length).toBeGreaterThan(0);
  // Each peer takes two jobs at once from one requester: most of these wait in the server's queue for a place.
  const streams = Array.from({ length: STREAMS }, () => streamed());
  await expect.poll(() => app.meshGateway.openStreams(userId), { timeout: 30_000, interval: 20 }).toBe(STREAMS);
  const refused = await streamed().catch((error: unknown) => error);
  expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
  expect(refused).toMatchObject({ status: 429, code: 'rate_limit_exceeded', type: 'rate_limit_error' });
  expect((refused as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('1');
  expect((refused as Error).message).toMatch(/At most 16 mesh streams at once per account/);
  const answered = await Promise.all(streams);
  expect(answered).toHaveLength(STREAMS);
  expect(new Set(answered)).toEqual(new Set([alone]));
  // Both peers served: the waiting jobs went to whichever had room.
  const served = peers.map((peer) => peer.status().jobsServed);
  expect(served.every((count) => count > 0)).toBe(true);
  // The cap counts open streams only: with all of them ended, the account may stream again.
  expect(await streamed()).toBe(alone);
}, 300_000);
