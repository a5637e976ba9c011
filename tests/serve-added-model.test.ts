// Models added by repo id, served by peers that are not the browser of the account that added them (README "Add a
// model by its repo id", "OpenAI-compatible API"), against the fake Hub and a real listening server:
// - SERVE_MODELS names a model an operator added for everyone: the server fetches its WASM dtype itself (its own peer
//   is a guest, which may not ask for downloads), loads it and shares it in the global room, and a requester who never
//   added anything gets its tokens over /v1: the engine's, and those of the reference forward pass;
// - SERVE_MODELS naming a model one account added for itself is refused at start;
// - `npm run peer --model <repo id>` finds the model by its repo id in its account's catalogue, downloads it through
//   the server and serves it; a guest's or another account's peer is told the catalogue it sees has no such model;
// - and the signaling server refuses a peer that names another account's added model, whatever the peer's code.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../scripts/fake-hub.ts';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { buildApp } from '../src/server/app.ts';
import { createApiKey } from '../src/server/services/api-keys.ts';
import type { Ack } from '../src/shared/socket-contract.ts';
import { accountCookie } from './support/accounts.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { type PublishedExport, publishExportShape, referenceTokens } from './support/export-fixtures.ts';
import { type MeshClient, connectMesh } from './support/mesh-socket.ts';
import { answerOnServerCopy, serverEntry } from './support/model-fixtures.ts';

const SERVED = 'mesh--served-q4f16';
const PRIVATE = 'mesh--private-q4';
const MESSAGES = [{ role: 'user' as const, content: 'Now is the winter of our discontent' }];
const MAX_TOKENS = 8;

let dir: string;
const hub = new FakeHub();
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let served: PublishedExport;
const people = {} as Record<'keeper' | 'ann' | 'bob', { cookie: string; userId: string; token: string }>;
let bobKey: string;
let bob: OpenAI;
const peers: HeadlessPeer[] = [];
const sockets: MeshClient[] = [];

const env = (extra: Record<string, string> = {}) =>
  testEnv({
    DATA_DIR: path.join(dir, 'data'),
    HF_ENDPOINT: hub.origin,
    MODEL_CACHE_DIR: path.join(dir, 'server-cache'),
    DOWNLOAD_DISK_MARGIN_BYTES: '0',
    OPERATORS: 'keeper',
    ...extra,
  });

async function add(server: FastifyInstance, cookie: string, input: Record<string, unknown>): Promise<string> {
  const response = await server.inject({
    method: 'POST',
    url: '/api/trpc/models.add',
    payload: input,
    headers: { cookie },
  });
  expect(response.statusCode, response.body).toBe(200);
  return (response.json() as { result: { data: { entry: { id: string } } } }).result.data.entry.id;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-serve-added-'));
  await hub.start();
  const exports = path.join(dir, 'exports');
  served = await publishExportShape(hub, exports, 'q4f16', { repo: 'mesh/served-q4f16', license: 'apache-2.0' });
  await publishExportShape(hub, exports, 'q4', { repo: 'mesh/private-q4', license: 'mit' });
  db = await openTestDatabase('pglite');
  for (const name of ['keeper', 'ann', 'bob'] as const) {
    const account = await accountCookie(db.database.prisma, name);
    people[name] = { ...account, token: account.cookie.slice('mesh_session='.length) };
  }
  bobKey = (await createApiKey(db.database.prisma, people.bob.userId, 'key')).key;
  // The operator adds one model for everyone, Ann one for herself, on a server that serves nothing yet; the server
  // that serves is started afterwards with SERVE_MODELS, as an operator would restart it.
  const first = await buildApp({ env: env(), database: db.database });
  try {
    expect(await add(first, people.keeper.cookie, { repo: 'mesh/served-q4f16', forEveryone: true })).toBe(SERVED);
    expect(await add(first, people.ann.cookie, { repo: 'mesh/private-q4' })).toBe(PRIVATE);
  } finally {
    await first.close();
  }
}, 120_000);

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.disconnect();
});

afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.stop().catch(() => undefined)));
  await app?.close();
  await db?.cleanup();
  await hub.stop();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('SERVE_MODELS with models added by repo id', () => {
  it('refuses at start a model one account added for itself, and one nobody added', async () => {
    await expect(buildApp({ env: env({ SERVE_MODELS: PRIVATE }), database: db.database })).rejects.toThrow(
      `SERVE_MODELS names models only the accounts that added them see: ${PRIVATE} (the server shares its models in the global room`,
    );
    await expect(buildApp({ env: env({ SERVE_MODELS: 'mesh--never-added' }), database: db.database })).rejects.toThrow(
      /SERVE_MODELS names models the catalogue does not have: mesh--never-added/,
    );
  });

  it('fetches, loads and shares one an operator added for everyone; a requester gets its tokens over /v1', async () => {
    app = await buildApp({ env: env({ SERVE_MODELS: SERVED }), database: db.database });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    bob = new OpenAI({ apiKey: bobKey, baseURL: `${base}/v1`, maxRetries: 0 });
    const owner = async () => {
      for await (const model of bob.models.list()) if (model.id === SERVED) return model;
      return null;
    };
    await expect.poll(owner, { timeout: 60_000 }).toMatchObject({ id: SERVED, owned_by: 'server', rooms: ['global'] });
    // The server fetched the WASM dtype only, on nobody's request but its own configuration.
    const downloads = await db.database.prisma.modelDownload.findMany({
      where: { modelId: SERVED },
      select: { dtype: true, phase: true, requestedById: true },
    });
    expect(downloads).toEqual([{ dtype: 'q4f16', phase: 'READY', requestedById: null }]);

    const answer = await bob.chat.completions.create({
      model: SERVED,
      messages: MESSAGES,
      temperature: 0,
      top_p: 1,
      seed: 3,
      max_tokens: MAX_TOKENS,
    });
    // The same model loaded by an engine of this process through the proxy, and the reference forward pass.
    const entry = await serverEntry(base, SERVED);
    const alone = await answerOnServerCopy(base, entry, path.join(dir, 'reference'), MESSAGES, {
      temperature: 0,
      topP: 1,
      maxNewTokens: MAX_TOKENS,
    });
    const reference = await referenceTokens(path.join(dir, 'exports'), served, MESSAGES, MAX_TOKENS);
    expect(alone.tokenIds).toEqual(reference.tokens);
    expect(answer.usage?.completion_tokens).toBe(reference.tokens.length);
    const text = answer.choices[0]?.message.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    // A stream holds back half a character (U+FFFD) at the end; the whole answer is the engine's text up to it.
    expect(alone.text.startsWith(text)).toBe(true);
    expect(alone.text.slice(text.length)).toMatch(/^\uFFFD?$/);
  }, 120_000);
});

describe('a headless peer and models added by repo id', () => {
  const peer = (model: string, token?: string) => {
    const made = new HeadlessPeer({
      server: base,
      room: 'global',
      model,
      ...(token ? { token } : { name: 'Guest peer' }),
      cacheDir: path.join(dir, `peer-${peers.length}`),
      threads: 1,
    });
    peers.push(made);
    return made;
  };

  it('is told the catalogue it sees has no such model: as a guest, or as an account that did not add it', async () => {
    await expect(peer('mesh/private-q4').start()).rejects.toThrow(
      /^The server's catalogue has no model mesh\/private-q4 \(a guest sees the built-in models and those an operator added for everyone; for a model an account added by repo id, pass --token/,
    );
    await expect(peer(PRIVATE, people.bob.token).start()).rejects.toThrow(
      `The server's catalogue has no model ${PRIVATE} (this account sees the built-in models, the ones it added by repo id`,
    );
  }, 60_000);

  it('of the account that added it, found by its repo id: downloads it through the server and serves it', async () => {
    const ann = peer('https://huggingface.co/mesh/private-q4', people.ann.token);
    await ann.start();
    expect(ann.node?.capabilities().models.map((model) => model.id)).toEqual([PRIVATE]);
    // Bob, in the global room where Ann shares it, gets an answer from her peer.
    await expect
      .poll(
        async () => {
          for await (const model of bob.models.list())
            if (model.id === PRIVATE) return (model as OpenAI.Model & { rooms?: string[] }).rooms;
          return null;
        },
        { timeout: 30_000 },
      )
      .toEqual(['global']);
    const answer = await bob.chat.completions.create({
      model: PRIVATE,
      messages: MESSAGES,
      temperature: 0,
      max_tokens: 4,
    });
    expect(answer.usage?.completion_tokens).toBeGreaterThan(0);
    const job = await db.database.prisma.inferenceJob.findFirst({
      where: { requesterId: people.bob.userId, modelId: PRIVATE },
      select: { serverId: true },
    });
    expect(job).toEqual({ serverId: people.ann.userId });
  }, 120_000);
});

describe('signaling', () => {
  it("refuses a peer that names another account's added model, and lets the one that added it name it", async () => {
    const model = { id: PRIVATE, sha256: 'a'.repeat(64) };
    const capabilities = { backend: 'cpu' as const, models: [model], tokensPerSecond: null, sharing: true, queue: 0 };
    const join = (socket: MeshClient) =>
      socket.emitWithAck('room:join', { room: 'global', capabilities }) as Promise<Ack<unknown>>;
    const bobs = await connectMesh(base, sockets, { cookie: people.bob.cookie });
    expect(await join(bobs)).toEqual({
      ok: false,
      error: 'FORBIDDEN',
      message: `${PRIVATE} is not in your catalogue: another account added it by repo id, and only what your catalogue shows can be shared`,
    });
    // Joined with nothing, then claiming it: refused the same way.
    expect(await bobs.emitWithAck('room:join', { room: 'global' })).toMatchObject({ ok: true });
    expect(await bobs.emitWithAck('peer:update', { room: 'global', capabilities })).toMatchObject({
      ok: false,
      error: 'FORBIDDEN',
    });
    const anns = await connectMesh(base, sockets, { cookie: people.ann.cookie });
    expect(await join(anns)).toMatchObject({ ok: true });
  });
});
