// The OpenAI-compatible API on the mesh, driven by the official `openai` client against a listening server: a
// catalogue model answers through a headless peer of the room (whole and streamed), greedy answers equal the same
// job asked through the requester a browser uses, a client that leaves mid-stream cancels the peer's job, a peer
// killed mid-stream is replaced with an identical continuation, and rooms and peers that cannot answer are refused
// in OpenAI's error shape.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { MeshJobError } from '../src/shared/mesh/job-requester.ts';
import { buildApp } from '../src/server/app.ts';
import { createApiKey } from '../src/server/services/api-keys.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

const MODEL = 'nano-shakespeare';
let dir: string;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let client: OpenAI;
const peers: HeadlessPeer[] = [];
const logs = new Map<HeadlessPeer, string[]>();

async function startPeer(name: string, model?: string): Promise<HeadlessPeer> {
  const lines: string[] = [];
  const peer = new HeadlessPeer({
    server: base,
    room: 'global',
    ...(model ? { model } : {}),
    name,
    cacheDir: path.join(dir, 'cache', name),
    threads: 1,
    log: (line) => lines.push(line),
  });
  logs.set(peer, lines);
  peers.push(peer);
  await peer.start();
  return peer;
}

/** GET /v1/models lists the model as shared on the mesh (the room's presence has it). */
async function listedOnMesh(): Promise<void> {
  await expect
    .poll(async () => (await listed()).find((m) => m.id === MODEL)?.owned_by, { timeout: 30_000 })
    .toBe('mesh');
}

/** Every sharing peer has finished its jobs (a finished answer may be followed by its spot check on another peer). */
async function idle(): Promise<void> {
  await expect.poll(() => peers.every((peer) => peer.status().running === 0), { timeout: 60_000 }).toBe(true);
}

async function listed() {
  const models = [];
  for await (const model of client.models.list()) models.push(model);
  return models;
}

const prompt = [{ role: 'user' as const, content: 'ROMEO:' }];
const greedy = { model: MODEL, messages: prompt, temperature: 0, seed: 7, max_tokens: 40 };

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-openai-'));
  db = await openTestDatabase('pglite');
  app = await buildApp({ env: testEnv({ DATA_DIR: path.join(dir, 'data') }), database: db.database });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  const user = await db.database.prisma.user.create({
    data: { kind: 'ACCOUNT', username: 'meshapi', displayName: 'meshapi' },
    select: { id: true },
  });
  client = new OpenAI({
    apiKey: (await createApiKey(db.database.prisma, user.id, 'key')).key,
    baseURL: `${base}/v1`,
    maxRetries: 0,
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.stop()));
  // The aborted stream's client reconnects and leaves that connection unused: closing does not wait for it
  // (tests/shutdown.test.ts).
  await app?.close();
  await db?.cleanup();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('a catalogue model over /v1', () => {
  it('is refused with 503 while no peer shares it, and 404 for a room the account has not joined', async () => {
    const none = await client.chat.completions.create(greedy).catch((error: unknown) => error);
    expect(none).toBeInstanceOf(OpenAI.InternalServerError);
    expect(none).toMatchObject({ status: 503 });
    expect((none as Error).message).toMatch(/No peer in room global shares nano-shakespeare/);

    const room = await client.chat.completions
      .create(greedy, { headers: { 'X-Mesh-Room': 'secret-room' } })
      .catch((error: unknown) => error);
    expect(room).toBeInstanceOf(OpenAI.NotFoundError);
    expect(room).toMatchObject({ status: 404, code: 'room_not_found' });
  });

  it('answers whole and streamed through a headless peer, as the requester a browser uses answers', async () => {
    await startPeer('Ash', MODEL);
    await listedOnMesh();
    const whole = await client.chat.completions.create(greedy);
    const text = whole.choices[0]?.message.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    expect(whole).toMatchObject({ object: 'chat.completion', model: MODEL });
    expect(whole.usage?.completion_tokens).toBe(40);
    expect(whole.choices[0]?.finish_reason).toBe('length');

    const stream = await client.chat.completions.create({
      ...greedy,
      stream: true,
      stream_options: { include_usage: true },
    });
    // The job's record is written once the answer is out, not beside it (the embedded database runs on the server's
    // thread), and keeps the time the peer took the job.
    const records = () => db.database.prisma.inferenceJob.count();
    const before = await records();
    let streamed = '';
    let usage = null;
    let firstChunkAt = 0;
    let duringAnswer = -1;
    let deltas = 0;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content ?? '';
      if (delta && !firstChunkAt) firstChunkAt = Date.now();
      streamed += delta;
      usage = chunk.usage ?? usage;
      // Through the first half of the answer's 40 tokens (after the last, the record may already be written).
      if (delta && ++deltas <= 20) duringAnswer = Math.max(duringAnswer, await records());
    }
    expect(streamed).toBe(text);
    expect(usage).toMatchObject({ completion_tokens: 40 });
    expect(duringAnswer).toBe(before);
    const record = await db.database.prisma.inferenceJob.findFirstOrThrow({
      orderBy: { createdAt: 'desc' },
      select: { outcome: true, tokensOut: true, createdAt: true, peers: { select: { role: true } } },
    });
    expect(await records()).toBe(before + 1);
    expect(record).toMatchObject({ outcome: 'COMPLETED', tokensOut: 40, peers: [{ role: 'SERVER' }] });
    expect(record.createdAt.getTime()).toBeLessThanOrEqual(firstChunkAt);

    // The same job from a requester-only Node member (the JobRequester a browser tab runs).
    const asker = await startPeer('Asker');
    const node = asker.node;
    if (!node) throw new Error('no node');
    await expect.poll(() => node.requester.rank({ id: MODEL, sha256: sha(node) }).length).toBeGreaterThan(0);
    const job = node.requester.run({
      model: { id: MODEL, sha256: sha(node) },
      messages: prompt,
      sampling: { temperature: 0, topP: 0.95, maxNewTokens: 40, seed: 7 },
      onToken: () => {},
    });
    expect((await job.result).text).toBe(text);
  }, 120_000);
});

describe('a conversation past the model’s context (512 tokens for nano-shakespeare)', () => {
  // About 5 tokens each with the chat template: 95 of them leave room for 20-odd tokens of answer, 100 for none.
  const lines = (n: number) => 'ROMEO: '.repeat(n);
  /** The sharing peer (the first test's, or one of its own when run alone). */
  async function sharingPeer(): Promise<HeadlessPeer> {
    const sharing = peers.find((peer) => peer.node?.server.sharing) ?? (await startPeer('Cole', MODEL));
    await listedOnMesh();
    await idle();
    return sharing;
  }

  it('refuses with 400 context_length_exceeded a last message that alone fills it, before any peer is asked', async () => {
    const sharing = await sharingPeer();
    const served = () => sharing.node?.server.served.length ?? -1;
    const before = { served: served(), records: await db.database.prisma.inferenceJob.count() };
    expect(before.served).toBeGreaterThanOrEqual(0);
    const refused = await client.chat.completions
      .create({ ...greedy, messages: [{ role: 'user', content: lines(100) }] })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'messages' });
    expect((refused as Error).message).toMatch(/no room for an answer in nano-shakespeare's context of 512/);
    // Streamed, the same refusal comes as the response's status, before any chunk.
    const streamed = await client.chat.completions
      .create({ ...greedy, stream: true, messages: [{ role: 'user', content: lines(100) }] })
      .catch((error: unknown) => error);
    expect(streamed).toMatchObject({ status: 400, code: 'context_length_exceeded' });
    // No peer was offered the job, so none is recorded against: no job, no record.
    expect(served()).toBe(before.served);
    expect(await db.database.prisma.inferenceJob.count()).toBe(before.records);
  });

  it('ends a job its peer finds too long for the context at once, as CONTEXT_OVERFLOW, with no fault against the peer', async () => {
    const sharing = await sharingPeer();
    const asker = peers.find((peer) => !peer.node?.server.sharing) ?? (await startPeer('Asker'));
    const node = asker.node;
    if (!node) throw new Error('no node');
    const model = { id: MODEL, sha256: sha(node) };
    await expect.poll(() => node.requester.rank(model).length).toBeGreaterThan(0);
    const ranked = node.requester.rank(model).length;
    // The requester a browser runs fits nothing itself: the serving peer's engine finds the last message too long.
    const refused = await node.requester
      .run({
        model,
        messages: [{ role: 'user', content: lines(100) }],
        sampling: { temperature: 0, topP: 1, maxNewTokens: 40, seed: 7 },
        onToken: () => {},
      })
      .result.catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(MeshJobError);
    expect(refused).toMatchObject({
      code: 'CONTEXT_OVERFLOW',
      message: expect.stringMatching(/512 tokens of context/),
    });
    expect(sharing.node?.server.served.at(-1)).toMatchObject({ outcome: 'error' });
    // Not the peer's fault: it is still ranked, and answers the next job.
    expect(node.requester.rank(model)).toHaveLength(ranked);
    await idle();
    const answered = await node.requester.run({
      model,
      messages: prompt,
      sampling: { temperature: 0, topP: 1, maxNewTokens: 8, seed: 7 },
      onToken: () => {},
    }).result;
    expect(answered.tokenIds.length).toBeGreaterThan(0);
  });

  it('leaves the oldest turns out and cuts max_tokens to what the last message leaves, with usage to match', async () => {
    const server = (await sharingPeer()).node?.server;
    if (!server) throw new Error('no job server');
    // What the peer is offered (the real offer goes on to the real job server).
    const offered = vi.spyOn(server, 'offer');
    const plain = await client.chat.completions.create(greedy);
    await idle();
    const fitted = await client.chat.completions.create({
      ...greedy,
      messages: [{ role: 'user', content: lines(100) }, { role: 'assistant', content: 'Aye.' }, ...prompt],
    });
    expect(fitted.choices[0]?.message.content).toBe(plain.choices[0]?.message.content);
    expect(fitted.usage?.prompt_tokens).toBe(plain.usage?.prompt_tokens);
    // The server fitted it, as it fits a pipeline job's: the peer got the last turn alone.
    expect(offered.mock.calls.at(-1)?.[1]).toMatchObject({ messages: prompt, sampling: { maxNewTokens: 40 } });

    // max_tokens past the room the last message leaves: the answer gets that room, and stops there at most.
    await idle();
    const long = await client.chat.completions.create({
      ...greedy,
      max_tokens: 200,
      messages: [{ role: 'user', content: lines(95) }],
    });
    const usage = long.usage;
    expect(usage?.prompt_tokens).toBeGreaterThan(480);
    const room = 512 - (usage?.prompt_tokens ?? 0);
    expect(offered.mock.calls.at(-1)?.[1].sampling.maxNewTokens).toBe(room);
    offered.mockRestore();
    expect((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0)).toBeLessThanOrEqual(512);
    if (long.choices[0]?.finish_reason === 'length')
      expect((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0)).toBe(512);
  }, 60_000);
});

describe('a peer of the room going away mid-answer, or the client leaving', () => {
  const sampled = { model: MODEL, messages: prompt, temperature: 0.8, top_p: 0.95, seed: 4242, max_tokens: 400 };

  it('completes the answer identically on another peer when the serving one is killed mid-stream', async () => {
    await startPeer('Bay', MODEL);
    const sharing = peers.filter((peer) => peer.node?.server.sharing);
    expect(sharing).toHaveLength(2);
    const expected = (await client.chat.completions.create(sampled)).choices[0]?.message.content ?? '';
    expect(expected.length).toBeGreaterThan(100);
    await idle();

    const stream = await client.chat.completions.create({ ...sampled, stream: true });
    let text = '';
    let chunks = 0;
    let killed: HeadlessPeer | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (++chunks === 5) {
        killed = sharing.find((peer) => peer.status().running > 0);
        await killed?.stop();
      }
    }
    expect(killed).toBeDefined();
    expect(text).toBe(expected);
    // The job record says so: one failover, finished by the peer that was left.
    const job = await db.database.prisma.inferenceJob.findFirst({
      orderBy: { createdAt: 'desc' },
      select: { outcome: true, failoverCount: true },
    });
    expect(job).toEqual({ outcome: 'COMPLETED', failoverCount: 1 });
  }, 120_000);

  it('cancels the peer’s job when the client aborts mid-stream (the peer logs it)', async () => {
    const [serving] = peers.filter((peer) => peer.node?.server.sharing);
    if (!serving) throw new Error('no sharing peer left');
    const lines = logs.get(serving) ?? [];
    await idle();
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { ...sampled, seed: 99, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content && ++chunks === 3) {
        controller.abort();
        break;
      }
    }
    await expect
      .poll(() => lines.find((line) => /^answer job \S+: cancelled after \d+ tokens$/.test(line)), { timeout: 10_000 })
      .toBeDefined();
    const made = Number(/after (\d+) tokens/.exec(lines.find((line) => line.includes('cancelled')) ?? '')?.[1]);
    expect(made).toBeLessThan(400);
    expect(serving.status().running).toBe(0);
    // Its record is written all the same, once the job is over.
    await expect
      .poll(
        async () =>
          (
            await db.database.prisma.inferenceJob.findFirst({
              orderBy: { createdAt: 'desc' },
              select: { outcome: true },
            })
          )?.outcome,
        { timeout: 10_000 },
      )
      .toBe('CANCELLED');
  }, 60_000);
});

function sha(node: NonNullable<HeadlessPeer['node']>): string {
  const shared = node.list().flatMap((peer) => peer.capabilities?.models ?? []);
  return shared.find((model) => model.id === MODEL)?.sha256 ?? '';
}
