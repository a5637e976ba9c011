// A model added by repo id, end to end on the mesh and the OpenAI-compatible API (README "Add a model by its repo
// id", "OpenAI-compatible API"): Ann adds a Hub repo (the fake Hub), her headless peer downloads it through the
// server, loads it and shares it in her private room; Bob, a member of that room who never added it, asks it over
// /v1 with the official `openai` client, and his job runs on Ann's peer with the greedy tokens the engine makes on
// its own. Who may ask it (src/server/openai/added-models.ts): the accounts that see it in their catalogue, and the
// members of a room where it is shared, there; anyone else gets the 404 of an unknown model.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { buildApp } from '../src/server/app.ts';
import { sessionCookieHeader } from '../src/shared/session-cookie.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { answerOnServerCopy, serverEntry } from './support/model-fixtures.ts';
import { type PrivateRoom, listedModels as listed, privateRoomCast } from './support/openai-room.ts';

const REPO = 'mesh/tiny-added';
let MODEL = '';
let dir: string;
let hub: FakeHub;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let room: string;
let annCookie: string;
let peer: HeadlessPeer;
/** Ann added the model and shares it in her private room; Bob joined the room; Cyd did neither. */
let clients: PrivateRoom['clients'];
let ids: PrivateRoom['ids'];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-added-model-'));
  hub = new FakeHub();
  await hub.start();
  const local = path.join(dir, 'generated');
  await generateRandomModel(local, { layers: 1, hidden: 16, heads: 2, seed: 21 });
  const read = async (name: string) => bufferContent(await readFile(path.join(local, name)));
  await hub.addRepo(REPO, {
    'config.json': await read('config.json'),
    'generation_config.json': await read('generation_config.json'),
    'tokenizer.json': await read('tokenizer.json'),
    'tokenizer_config.json': await read('tokenizer_config.json'),
    'onnx/model.onnx': await read('onnx/model.onnx'),
    'README.md': bufferContent('---\nlicense: apache-2.0\n---\n# A tiny model\n'),
  });
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      DATA_DIR: path.join(dir, 'data'),
      HF_ENDPOINT: hub.origin,
      MODEL_CACHE_DIR: path.join(dir, 'server-cache'),
      DOWNLOAD_DISK_MARGIN_BYTES: '0',
    }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  const cast = await privateRoomCast(db.database.prisma, base);
  ({ clients, ids, room } = cast);
  const token = cast.annToken;
  annCookie = sessionCookieHeader(token);
  const added = await app.inject({
    method: 'POST',
    url: '/api/trpc/models.add',
    payload: { repo: REPO },
    headers: { cookie: annCookie },
  });
  expect(added.statusCode).toBe(200);
  MODEL = (added.json() as { result: { data: { entry: { id: string } } } }).result.data.entry.id;
  // What `npm run peer -- --token=... --room lab --model mesh--tiny-added` does: download through the server, load, share.
  peer = new HeadlessPeer({ server: base, room, model: MODEL, token, cacheDir: path.join(dir, 'peer'), threads: 1 });
  await peer.start();
}, 180_000);

afterAll(async () => {
  await peer?.stop();
  await app?.close();
  await db?.cleanup();
  await hub?.stop();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

/** The same model, loaded by an engine of this process through the server's proxy: the reference answer. */
async function reference(content: string, maxNewTokens: number) {
  const entry = await serverEntry(base, MODEL, annCookie);
  return answerOnServerCopy(
    base,
    entry,
    path.join(dir, 'reference'),
    [{ role: 'user', content }],
    { temperature: 0, topP: 1, maxNewTokens },
    annCookie,
  );
}

const greedy = () => ({
  model: MODEL,
  messages: [{ role: 'user' as const, content: 'hello there' }],
  temperature: 0,
  top_p: 1,
  seed: 3,
  max_tokens: 12,
});

describe('a model added by repo id, shared by the peer of the account that added it', () => {
  it('is listed by GET /v1/models for the members of the room it is shared in, with that room', async () => {
    expect(MODEL).toBe('mesh--tiny-added');
    await expect
      .poll(async () => (await listed(clients.bob)).find((model) => model.id === MODEL), { timeout: 30_000 })
      .toMatchObject({ id: MODEL, owned_by: 'mesh', rooms: [room] });
    expect((await listed(clients.ann)).find((model) => model.id === MODEL)).toMatchObject({ rooms: [room] });
    expect((await listed(clients.cyd)).find((model) => model.id === MODEL)).toBeUndefined();
  }, 60_000);

  it('answers a room member who never added it, on the sharing peer, with the engine’s own greedy tokens', async () => {
    const answer = await clients.bob.chat.completions.create(greedy(), { headers: { 'X-Mesh-Room': room } });
    const expected = await reference('hello there', 12);
    expect(expected.tokenIds.length).toBeGreaterThan(0);
    // The same tokens; the reference's text may end in half a character (U+FFFD) that a stream holds back.
    const text = answer.choices[0]?.message.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    expect(expected.text.startsWith(text)).toBe(true);
    expect(expected.text.slice(text.length)).toMatch(/^\uFFFD?$/);
    expect(answer.usage?.completion_tokens).toBe(expected.tokenIds.length);
    expect(answer.model).toBe(MODEL);
    // Bob's job, in that room, on the added model, served by Ann's peer.
    const job = await db.database.prisma.inferenceJob.findFirst({
      where: { requesterId: ids.bob, modelId: MODEL },
      select: { room: { select: { slug: true } }, serverId: true },
    });
    expect(job).toEqual({ room: { slug: room }, serverId: ids.ann });
    // Streaming: the same text, chunk by chunk.
    const stream = await clients.bob.chat.completions.create(
      { ...greedy(), stream: true },
      { headers: { 'X-Mesh-Room': room } },
    );
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(text);
  }, 120_000);

  it('is a 404 model_not_found, as an unknown model, to a key that may not ask it there', async () => {
    const unknown = await clients.bob.chat.completions
      .create({ ...greedy(), model: 'mesh--never-added' })
      .catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    const notFound = {
      status: 404,
      error: {
        type: 'not_found_error',
        code: 'model_not_found',
        message: `The model \`${MODEL}\` does not exist (GET /v1/models lists the models this server offers)`,
      },
    };
    // Bob in the global room: not his, and nobody shares it there.
    expect(await clients.bob.chat.completions.create(greedy()).catch((error: unknown) => error)).toMatchObject(
      notFound,
    );
    // Cyd: not hers, and no room of hers shares it; naming Ann's room is refused as for any room she is not in.
    expect(await clients.cyd.chat.completions.create(greedy()).catch((error: unknown) => error)).toMatchObject(
      notFound,
    );
    const outsider = await clients.cyd.chat.completions
      .create(greedy(), { headers: { 'X-Mesh-Room': room } })
      .catch((error: unknown) => error);
    expect(outsider).toMatchObject({ status: 404, error: { code: 'room_not_found' } });
  });

  it('is the adder’s own anywhere: where no peer shares it, her key is told to share it (503)', async () => {
    const global = await clients.ann.chat.completions.create(greedy()).catch((error: unknown) => error);
    expect(global).toMatchObject({
      status: 503,
      error: { code: 'unavailable', message: expect.stringContaining(`No peer in room global shares ${MODEL}`) },
    });
    const answer = await clients.ann.chat.completions.create(greedy(), { headers: { 'X-Mesh-Room': room } });
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
  }, 60_000);
});
