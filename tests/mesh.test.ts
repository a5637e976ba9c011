// Mesh inference between MeshNodes in Node, each with its own real engine on the nano model (loaded through a
// real server process), joined by in-memory wires that deliver asynchronously: a peer without a model gets the
// serving peer's exact answer; the answer survives the serving peer leaving and its own chat taking the engine
// back; cancel stops the remote generation; a dishonest peer is caught by the spot check, excluded, and its
// answer corrected; oversize and malformed messages are dropped and counted; large offers travel in chunks.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EngineClient } from '../src/shared/engine-client.ts';
import type { EngineMessage, EngineModel, LoadedInfo } from '../src/shared/engine-protocol.ts';
import { EngineGate } from '../src/shared/mesh/engine-gate.ts';
import { DEFAULT_JOB_SERVER_OPTIONS } from '../src/shared/mesh/job-server.ts';
import { DEFAULT_REQUESTER_OPTIONS, type MeshOutcome, MeshJobError } from '../src/shared/mesh/job-requester.ts';
import { MeshNode } from '../src/shared/mesh/mesh-node.ts';
import { modelFingerprint } from '../src/shared/schemas/models.ts';
import type { PeerChannel } from '../src/shared/mesh/peer-channel.ts';
import { PEER_LIMITS, type JobSampling, type ModelRef } from '../src/shared/peer-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { inProcessWorker } from '../src/worker/in-process.ts';
import { nanoEngineModel } from './support/model-fixtures.ts';
import { type ServerProcess, startServer } from './support/server-process.ts';

let dir: string;
let server: ServerProcess;
let nano: EngineModel;
let ref: ModelRef;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-jobs-'));
  server = await startServer({ DATA_DIR: path.join(dir, 'server'), CLIENT_DIST_DIR: path.join(dir, 'none') });
  nano = await nanoEngineModel();
  ref = { id: nano.id, sha256: await modelFingerprint(nano.repo, nano.revision, nano.dtype.wasm) };
}, 60_000);

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
  await rm(dir, { recursive: true, force: true });
});

interface TestPeer {
  name: string;
  peerId: string;
  node: MeshNode;
  client: EngineClient;
  gate: EngineGate;
}

const opened: TestPeer[] = [];

async function peer(
  name: string,
  options: {
    share?: boolean;
    corrupt?: boolean;
    tokensPerSecond?: number;
    spotCheckRate?: number;
    serving?: Partial<typeof DEFAULT_JOB_SERVER_OPTIONS>;
  } = {},
): Promise<TestPeer> {
  const engine = new InferenceEngine({ modelHost: `${server.url}/models/`, cacheDir: path.join(dir, 'tfjs-cache') });
  const client = new EngineClient(inProcessWorker(engine));
  let info: LoadedInfo | null = null;
  if (options.share) info = await client.load(nano);
  const gate = new EngineGate();
  const node = new MeshNode(
    {
      loaded: () => (info ? { model: ref, backend: info.backend } : null),
      generate: (messages, sampling, prefix) => client.generate(messages, sampling, prefix),
    },
    gate,
    {
      adapter: 'cpu',
      serving: { ...DEFAULT_JOB_SERVER_OPTIONS, ...options.serving, corruptTokens: options.corrupt ?? false },
      requesting: {
        ...DEFAULT_REQUESTER_OPTIONS,
        spotCheckRate: options.spotCheckRate ?? 0,
        stallMs: 3000,
        acceptTimeoutMs: 3000,
      },
    },
  );
  node.setSharing(options.share ?? false);
  if (options.tokensPerSecond) node.measured(options.tokensPerSecond);
  const made = { name, peerId: randomUUID(), node, client, gate };
  opened.push(made);
  return made;
}

const links = new Map<string, { open: boolean; stalled: boolean }>();

/** An in-memory data channel each way, delivering on a later turn of the event loop as a real one would. */
function connect(a: TestPeer, b: TestPeer): { aToB: PeerChannel; bToA: PeerChannel } {
  const state = { open: true, stalled: false };
  links.set([a.peerId, b.peerId].sort().join(), state);
  const channels: { a?: PeerChannel; b?: PeerChannel } = {};
  const wire = (deliver: () => PeerChannel | undefined) => ({
    send: (text: string) => setImmediate(() => state.open && !state.stalled && deliver()?.receive(text)),
    isOpen: () => state.open,
    bufferedAmount: () => 0,
    onceBelow: (_threshold: number, listener: () => void) => listener(),
  });
  channels.a = a.node.addPeer(
    b.peerId,
    b.name,
    wire(() => channels.b),
  );
  channels.b = b.node.addPeer(
    a.peerId,
    a.name,
    wire(() => channels.a),
  );
  return { aToB: channels.a, bToA: channels.b };
}

function disconnect(a: TestPeer, b: TestPeer): void {
  const state = links.get([a.peerId, b.peerId].sort().join());
  if (state) state.open = false;
  a.node.removePeer(b.peerId);
  b.node.removePeer(a.peerId);
}

/** Until every connected pair knows what the other announces now (its hello reached it), however slow the run. */
async function settle() {
  const current = (a: TestPeer, b: TestPeer) =>
    JSON.stringify(a.node.peer(b.peerId)?.capabilities) === JSON.stringify(b.node.capabilities());
  await vi.waitFor(() => {
    for (const a of opened) {
      for (const b of opened) {
        if (a !== b && links.get([a.peerId, b.peerId].sort().join())?.open)
          expect(current(a, b), `${a.name} knows ${b.name}`).toBe(true);
      }
    }
  }, 10_000);
}

const MESSAGES: EngineMessage[] = [{ role: 'user', content: 'What says the king?' }];
const GREEDY: JobSampling = { temperature: 0, topP: 1, maxNewTokens: 24, seed: 1 };
const SAMPLED: JobSampling = { temperature: 0.8, topP: 0.95, maxNewTokens: 24, seed: 4242 };

/** The answer one engine gives on its own, uninterrupted. */
async function localAnswer(sampling: JobSampling) {
  const engine = new InferenceEngine({ modelHost: `${server.url}/models/`, cacheDir: path.join(dir, 'tfjs-cache') });
  await engine.load(nano, 'auto', () => {});
  const result = await engine.generate(MESSAGES, sampling, () => {});
  await engine.unload();
  return { tokenIds: result.tokenIds, text: result.text };
}

/** A (faster, picked first) and C share; B asks; plus the answer one engine gives uninterrupted. */
async function failoverRoom() {
  const expected = await localAnswer(SAMPLED);
  const a = await peer('A', { share: true, tokensPerSecond: 500 });
  const c = await peer('C', { share: true, tokensPerSecond: 100 });
  const b = await peer('B');
  connect(a, b);
  connect(c, b);
  await settle();
  return { expected, a, c, b };
}

afterEach(() => {
  for (const made of opened.splice(0)) made.node.close();
});

describe('mesh inference between nodes', () => {
  it("gives a peer without a model the serving peer's exact answer, streamed token by token", async () => {
    const a = await peer('A', { share: true });
    const b = await peer('B');
    connect(a, b);
    await settle();
    const streamed: string[] = [];
    const job = b.node.requester.run({
      model: ref,
      messages: MESSAGES,
      sampling: GREEDY,
      onToken: (token) => streamed.push(token.text),
    });
    const outcome = await job.result;
    const expected = await localAnswer(GREEDY);
    expect(outcome.tokenIds).toEqual(expected.tokenIds);
    expect(outcome.text).toBe(expected.text);
    expect(streamed.join('')).toBe(expected.text);
    expect(outcome.servedBy.map((p) => p.name)).toEqual(['A']);
    expect(outcome.failovers).toBe(0);
    expect(outcome.backend).toBe('cpu');
    expect(a.node.server.served.at(-1)).toMatchObject({
      outcome: 'done',
      peerId: b.peerId,
      tokensOut: expected.tokenIds.length,
    });
  }, 60_000);

  it('continues on another peer when the serving one leaves mid-answer: one answer, identical, one failover', async () => {
    const { expected, a, b } = await failoverRoom();
    const servers: string[] = [];
    const job = b.node.requester.run({
      model: ref,
      messages: MESSAGES,
      sampling: SAMPLED,
      onToken: (token, from) => {
        servers.push(from.name);
        // A goes away after a few tokens (its page closed).
        if (token.index === 4) disconnect(a, b);
      },
    });
    const outcome = await job.result;
    expect(outcome.tokenIds).toEqual(expected.tokenIds);
    expect(outcome.text).toBe(expected.text);
    expect(outcome.failovers).toBe(1);
    expect(outcome.servedBy.map((p) => p.name)).toEqual(['A', 'C']);
    expect(servers.slice(0, 5)).toEqual(['A', 'A', 'A', 'A', 'A']);
    expect(servers.slice(5).every((name) => name === 'C')).toBe(true);
  }, 60_000);

  it('continues on another peer when the serving one stalls mid-answer without leaving', async () => {
    const { expected, a, b } = await failoverRoom();
    const link = links.get([a.peerId, b.peerId].sort().join());
    const started = performance.now();
    const outcome = await b.node.requester.run({
      model: ref,
      messages: MESSAGES,
      sampling: SAMPLED,
      onToken: (token) => {
        // Nothing more gets through from A, though its channel stays open.
        if (token.index === 4 && link) link.stalled = true;
      },
    }).result;
    expect(outcome.tokenIds).toEqual(expected.tokenIds);
    expect(outcome.failovers).toBe(1);
    expect(outcome.servedBy.map((p) => p.name)).toEqual(['A', 'C']);
    // After the stall timeout (3 s here), not before.
    expect(performance.now() - started).toBeGreaterThan(2900);
  }, 60_000);

  it("continues elsewhere when the serving peer's own chat takes its engine back", async () => {
    const { expected, a, b } = await failoverRoom();
    let local: Promise<unknown> | null = null;
    const job = b.node.requester.run({
      model: ref,
      messages: MESSAGES,
      sampling: SAMPLED,
      onToken: (token) => {
        if (token.index === 3 && !local) {
          // A's person sends a message in A's own chat: local work first.
          local = a.gate.acquire('local').then(async (release) => {
            await a.client.generate([{ role: 'user', content: 'hello' }], { temperature: 0, maxNewTokens: 4 }).result;
            release();
          });
        }
      },
    });
    const outcome = await job.result;
    await local;
    expect(outcome.tokenIds).toEqual(expected.tokenIds);
    expect(outcome.failovers).toBe(1);
    expect(outcome.servedBy.map((p) => p.name)).toEqual(['A', 'C']);
    expect(a.node.server.served.at(-1)).toMatchObject({ outcome: 'error' });
  }, 60_000);

  it('stops the remote generation within one token of a cancel', async () => {
    const a = await peer('A', { share: true });
    const b = await peer('B');
    connect(a, b);
    await settle();
    let job: ReturnType<typeof b.node.requester.run> | null = null;
    job = b.node.requester.run({
      model: ref,
      messages: MESSAGES,
      sampling: { ...SAMPLED, maxNewTokens: 200 },
      onToken: (token) => {
        if (token.index === 2) job?.cancel();
      },
    });
    const outcome = await job.result;
    expect(outcome.reason).toBe('interrupted');
    await expect.poll(() => a.node.server.served.length).toBe(1);
    const served = a.node.server.served[0];
    expect(served?.outcome).toBe('cancelled');
    // Tokens in flight when the cancel crossed the wire, and the one being computed: a handful, not 200.
    expect(served?.tokensOut).toBeLessThan(12);
  }, 60_000);

  it('says CANCELLED, not an empty answer, when stopped before any token came', async () => {
    const a = await peer('A', { share: true });
    const b = await peer('B');
    connect(a, b);
    await settle();
    const job = b.node.requester.run({ model: ref, messages: MESSAGES, sampling: SAMPLED, onToken: () => {} });
    job.cancel();
    await expect(job.result).rejects.toMatchObject({ code: 'CANCELLED' });
  }, 60_000);

  it('says plainly when no peer shares the model, and why each refused', async () => {
    const a = await peer('A', { share: true });
    a.node.setSharing(false);
    const b = await peer('B');
    connect(a, b);
    await settle();
    // A does not share: it is not even asked.
    await expect(
      b.node.requester.run({ model: ref, messages: MESSAGES, sampling: GREEDY, onToken: () => {} }).result,
    ).rejects.toMatchObject({ code: 'NO_PEER' });
    a.node.setSharing(true);
    await settle();
    const other: ModelRef = { id: ref.id, sha256: 'f'.repeat(64) };
    const error = await b.node.requester
      .run({ model: other, messages: MESSAGES, sampling: GREEDY, onToken: () => {} })
      .result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MeshJobError);
    expect((error as MeshJobError).message).toMatch(/No peer in this room shares/);
  }, 60_000);

  it('catches a peer that returns wrong tokens with a spot check, excludes it, and corrects the answer', async () => {
    const expected = await localAnswer(SAMPLED);
    // C lies about its speed too, so it is picked first.
    const c = await peer('C', { share: true, corrupt: true, tokensPerSecond: 9000 });
    const a = await peer('A', { share: true, tokensPerSecond: 100 });
    const d = await peer('D', { share: true, tokensPerSecond: 90 });
    const b = await peer('B', { spotCheckRate: 1 });
    for (const other of [a, c, d]) connect(other, b);
    await settle();
    const mismatches: string[] = [];
    b.node.requester.onMismatch(({ peerId }) => mismatches.push(peerId));
    const outcome: MeshOutcome = await b.node.requester.run({
      model: ref,
      messages: MESSAGES,
      sampling: SAMPLED,
      onToken: () => {},
    }).result;
    expect(outcome.servedBy.map((p) => p.name)).toEqual(['C']);
    expect(outcome.tokenIds).not.toEqual(expected.tokenIds);
    const check = await outcome.check;
    expect(check?.result).toBe('MISMATCH');
    expect(check?.excluded).toEqual([c.peerId]);
    expect(check?.corrected).toEqual(expected);
    expect(mismatches).toEqual([c.peerId]);
    expect(b.node.requester.exclusion(c.peerId)).toMatch(/did not match two other peers'/);
    // The next job does not go to C.
    const next = await b.node.requester.run({ model: ref, messages: MESSAGES, sampling: SAMPLED, onToken: () => {} })
      .result;
    expect(next.servedBy.map((p) => p.name)).not.toContain('C');
    expect(next.tokenIds).toEqual(expected.tokenIds);
    // An honest answer passes its check.
    expect(await next.check).toMatchObject({ result: 'MATCH', excluded: [] });
  }, 120_000);

  it('drops and counts oversize and malformed messages without harm, and carries a large offer in chunks', async () => {
    const a = await peer('A', { share: true });
    const b = await peer('B');
    const { bToA } = connect(a, b);
    await settle();
    const before = bToA.droppedTotal();
    bToA.receive('x'.repeat(PEER_LIMITS.frameChars + 1));
    bToA.receive('{not json');
    bToA.receive(JSON.stringify({ v: 1, type: 'job:offer', jobId: 'nope' }));
    bToA.receive(JSON.stringify({ v: 2, type: 'ping', t: 1 }));
    bToA.receive(JSON.stringify({ v: 1, type: 'chunk', id: 1, index: 5, count: 2, data: 'x' }));
    bToA.receive(new ArrayBuffer(8));
    expect(bToA.droppedTotal() - before).toBe(6);
    expect(bToA.dropped).toMatchObject({ oversize: 1, malformed: 2, invalid: 2, chunk: 1 });
    // A long conversation (well past one frame) still reaches A whole, and A answers it.
    const long: EngineMessage[] = [
      { role: 'user', content: 'Speak. '.repeat(4000) },
      { role: 'assistant', content: 'I will. '.repeat(3000) },
      ...MESSAGES,
    ];
    const outcome = await b.node.requester.run({ model: ref, messages: long, sampling: GREEDY, onToken: () => {} })
      .result;
    expect(outcome.tokenIds.length).toBeGreaterThan(0);
    expect(a.node.server.served.at(-1)).toMatchObject({ outcome: 'done' });
    expect(a.node.peer(b.peerId)?.channel.droppedTotal()).toBe(0);
    // A message past the protocol's caps is refused before it is sent, saying which field.
    const tooLong = b.node.requester.run({
      model: ref,
      messages: [{ role: 'user', content: 'x'.repeat(40_000) }],
      sampling: GREEDY,
      onToken: () => {},
    });
    await expect(tooLong.result).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringMatching(/messages\.0\.content/),
    });
  }, 60_000);

  it('holds its caps: outstanding jobs per peer, the queue, offers per minute and deadlines, each refused by name', async () => {
    const a = await peer('A', { share: true, serving: { queueLimit: 2, perPeerOutstanding: 2, perPeerPerMinute: 5 } });
    const b = await peer('B');
    const c = await peer('C');
    connect(a, b);
    connect(a, c);
    await settle();
    // Raw offers, to see A's every answer.
    const heard = (from: TestPeer) => {
      const replies: { type: string; jobId?: string; reason?: string; code?: string }[] = [];
      const channel = from.node.peer(a.peerId)?.channel;
      if (!channel) throw new Error('no channel to A');
      channel.onMessage = (message) => replies.push(message);
      return { channel, replies };
    };
    const fromB = heard(b);
    const fromC = heard(c);
    const offer = (deadlineMs = 60_000) => ({
      type: 'job:offer' as const,
      jobId: randomUUID(),
      model: ref,
      messages: MESSAGES,
      sampling: { ...SAMPLED, maxNewTokens: 40 },
      prefix: [],
      deadlineMs,
      purpose: 'answer' as const,
    });
    const [first, second, third] = [offer(), offer(), offer()];
    for (const job of [first, second, third]) await fromB.channel.send(job);
    // B's third is one too many at once; C's next ones find the queue full (one runs, two wait).
    await fromC.channel.send(offer());
    const late = offer();
    await fromC.channel.send(late);
    await expect
      .poll(() => fromB.replies.filter((r) => r.type === 'job:accept' || r.type === 'job:reject').length)
      .toBe(3);
    expect(fromB.replies.find((r) => r.jobId === third.jobId)).toMatchObject({
      type: 'job:reject',
      reason: 'TOO_MANY_JOBS',
    });
    await expect.poll(() => fromC.replies.find((r) => r.jobId === late.jobId)?.reason).toBe('QUEUE_FULL');
    await expect.poll(() => fromB.replies.filter((r) => r.type === 'job:done').length, { timeout: 30_000 }).toBe(2);
    // Past five offers a minute, B is refused whatever the queue.
    await fromB.channel.send(offer());
    await fromB.channel.send(offer());
    const sixth = offer();
    await fromB.channel.send(sixth);
    await expect.poll(() => fromB.replies.find((r) => r.jobId === sixth.jobId)?.reason).toBe('RATE_LIMITED');
    // A deadline too short to finish: the job ends with DEADLINE, not silence. Sent once every accepted job has
    // ended, so that it finds room in the queue however slowly the machine runs them.
    const ended = (replies: typeof fromB.replies) =>
      replies
        .filter((r) => r.type === 'job:accept')
        .every((accepted) =>
          replies.some((r) => r.jobId === accepted.jobId && (r.type === 'job:done' || r.type === 'job:error')),
        );
    await expect.poll(() => ended(fromB.replies) && ended(fromC.replies), { timeout: 30_000 }).toBe(true);
    const hurried = offer(1);
    await fromC.channel.send(hurried);
    await expect
      .poll(() => fromC.replies.find((r) => r.jobId === hurried.jobId && r.type === 'job:error')?.code, {
        timeout: 30_000,
      })
      .toBe('DEADLINE');
  }, 60_000);
});
