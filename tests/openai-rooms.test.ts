// The OpenAI-compatible API and private rooms, with the official `openai` client: a key reaches a private room
// through `X-Mesh-Room` only if its account belongs to it (a non-member's key and an unknown room get the same 404
// `room_not_found`, so a key cannot probe which private rooms exist), and `GET /v1/models` lists what each key can
// use: models shared in its rooms (with `rooms`), the stub, and each configured provider's allowed models, each with
// its `owned_by`. (The server's own models, `owned_by: "server"`: tests/openai-serve.test.ts.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAI } from '../scripts/fake-openai.ts';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { buildApp } from '../src/server/app.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { type PrivateRoom, listedModels as listed, privateRoomCast } from './support/openai-room.ts';

const MODEL = 'nano-shakespeare';
let dir: string;
let fake: FakeOpenAI;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let room: string;
let peer: HeadlessPeer;
/** Ann owns the private room and shares the model there; Bob joined it with the invite; Cyd did not. */
let clients: PrivateRoom['clients'];
let ids: PrivateRoom['ids'];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-openai-rooms-'));
  fake = new FakeOpenAI();
  await fake.start();
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      DATA_DIR: path.join(dir, 'data'),
      OPENAI_API_KEY: fake.apiKey,
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODELS: 'gpt-test,gpt-other',
    }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  const cast = await privateRoomCast(db.database.prisma, base);
  ({ clients, ids, room } = cast);
  const token = cast.annToken;
  peer = new HeadlessPeer({ server: base, room, model: MODEL, token, cacheDir: path.join(dir, 'cache'), threads: 1 });
  await peer.start();
}, 120_000);

afterAll(async () => {
  await peer?.stop();
  await app?.close();
  await db?.cleanup();
  await fake?.stop();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

const greedy = { model: MODEL, messages: [{ role: 'user' as const, content: 'ROMEO:' }], temperature: 0, seed: 5 };

describe('X-Mesh-Room naming a private room', () => {
  it('answers a member’s key there, through the peer sharing the model in that room', async () => {
    await expect
      .poll(async () => (await listed(clients.bob)).find((model) => model.id === MODEL), { timeout: 30_000 })
      .toBeDefined();
    const answer = await clients.bob.chat.completions.create(
      { ...greedy, max_tokens: 24 },
      { headers: { 'X-Mesh-Room': room } },
    );
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(answer.usage?.completion_tokens).toBe(24);
    // Recorded on Bob's account, in that room, served by Ann's peer.
    const job = await db.database.prisma.inferenceJob.findFirst({
      where: { requesterId: ids.bob },
      select: { room: { select: { slug: true } }, serverId: true },
    });
    expect(job).toEqual({ room: { slug: room }, serverId: ids.ann });
    // Without the header the key asks the global room, where nobody shares the model.
    const global = await clients.bob.chat.completions.create(greedy).catch((error: unknown) => error);
    expect(global).toMatchObject({ status: 503, error: { type: 'api_error', code: 'unavailable' } });
  }, 60_000);

  it('refuses a non-member’s key and an unknown room alike: 404 room_not_found in OpenAI’s shape', async () => {
    const outsider = await clients.cyd.chat.completions
      .create(greedy, { headers: { 'X-Mesh-Room': room } })
      .catch((error: unknown) => error);
    expect(outsider).toBeInstanceOf(OpenAI.NotFoundError);
    expect(outsider).toMatchObject({
      status: 404,
      error: {
        type: 'invalid_request_error',
        code: 'room_not_found',
        param: null,
        message: `No room ${room} among the rooms this key's account has joined (X-Mesh-Room)`,
      },
    });
    const unknown = await clients.bob.chat.completions
      .create(greedy, { headers: { 'X-Mesh-Room': 'no-such-room' } })
      .catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown).toMatchObject({
      status: 404,
      error: { code: 'room_not_found', message: expect.stringMatching(/^No room no-such-room among the rooms/) },
    });
    const malformed = await clients.bob.chat.completions
      .create(greedy, { headers: { 'X-Mesh-Room': 'Not A Slug!' } })
      .catch((error: unknown) => error);
    expect(malformed).toBeInstanceOf(OpenAI.BadRequestError);
    expect(malformed).toMatchObject({ status: 400, error: { type: 'invalid_request_error' } });
    expect((malformed as Error).message).toMatch(/Invalid X-Mesh-Room header/);
  });
});

describe('GET /v1/models', () => {
  it('lists the models shared in the key’s rooms with where, the stub and the provider’s allowed models, each with its owner', async () => {
    const own = (models: Awaited<ReturnType<typeof listed>>) =>
      models.map((model) => ({ id: model.id, owned_by: model.owned_by, rooms: (model as { rooms?: string[] }).rooms }));
    const expectedProviders = [
      { id: 'stub', owned_by: 'stub', rooms: undefined },
      { id: 'openai/gpt-test', owned_by: 'openai', rooms: undefined },
      { id: 'openai/gpt-other', owned_by: 'openai', rooms: undefined },
    ];
    for (const member of [clients.ann, clients.bob]) {
      expect(own(await listed(member))).toEqual([{ id: MODEL, owned_by: 'mesh', rooms: [room] }, ...expectedProviders]);
    }
    // Cyd is in no room where it is shared: only what every key may use.
    expect(own(await listed(clients.cyd))).toEqual(expectedProviders);
  });
});
