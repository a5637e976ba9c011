// The OpenAI-compatible API asking a pipeline (docs/pipeline.md, "Asking from /v1"): a catalogue model nobody in the
// room shares whole, whose layers two headless stage peers host (`--stage 0-2` and `--stage 2-4` of a generated
// 4-layer model, onnxruntime-node, werift data channels), driven by the official `openai` client against a listening
// server whose requester member of the room runs it as a pipeline job (askPipeline, as the app's chat does), with the
// tokenizer from the server's own model cache. Whole and streamed answers equal the inference engine's greedy answer
// on the whole model; GET /v1/models lists the model as a pipeline, asking the signaling presence once; a
// conversation past the model's context is answered with its oldest turns left out; a client that aborts mid-stream
// ends the job on both stage peers; the job is recorded once it is over, naming both stage peers; an answer is
// spot-checked by another chain of stage peers (its stage peers are new to the server's member, so every answer is
// drawn), and a last stage that lies about its tokens is caught by two chains that agree against it; a room whose
// stages do not cover every layer is refused with 503 in OpenAI's shape.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FakeHub } from '../scripts/fake-hub.ts';
import { evenBoundaries } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { graphVersion } from '../src/peer/splitter/graph-digest.ts';
import { buildStageGraphs } from '../scripts/tiny-model/stages.ts';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { buildApp } from '../src/server/app.ts';
import { fetchForServing } from '../src/server/openai/serve-models.ts';
import { createApiKey } from '../src/server/services/api-keys.ts';
import type { LayerRange } from '../src/shared/pipeline/pipe-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { publishModels } from './support/model-fixtures.ts';
import { listedModels } from './support/openai-room.ts';

const MODEL = 'pipeline-api';
// A context long enough for an answer that outlasts a client's abort.
const OPTIONS = { layers: 4, hidden: 64, heads: 4, seed: 23, vocab: 400, maxPositions: 1024 };
const PROMPT = 'Tell me a long story about the sea and the ships upon it.';
const LONG = 600;

let dir: string;
let stageDir: string;
/** The generated model's own directory: its whole graph, which `auto` stage peers cut any range from. */
let modelDir: string;
/** The key's account. */
let userId: string;
let hub: FakeHub;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let client: OpenAI;
/** The engine's greedy answers on the whole model: 20 tokens, and LONG. */
let short: { text: string; tokenIds: number[] };
let long: { text: string; tokenIds: number[] };
const stages: HeadlessPeer[] = [];

const messages = [{ role: 'user' as const, content: PROMPT }];
const greedy = { model: MODEL, messages, temperature: 0, top_p: 1, seed: 5, max_tokens: 20 };

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-openai-pipeline-'));
  hub = new FakeHub();
  await hub.start();
  const { manifestPath, published } = await publishModels(hub, dir, [{ id: MODEL, options: OPTIONS }]);
  const entry = published[MODEL];
  if (!entry?.weights) throw new Error('the generated model is missing');
  // The 2-stage files and the config only: with the whole graph beside them, a stage peer could cut any range, and
  // one peer would run the whole model. Their manifest names the graph they are cut from, so they are one model
  // version with the `auto` peers' cuts of it (docs/pipeline.md#stage-fingerprints).
  modelDir = entry.dir;
  stageDir = path.join(dir, 'stage-files');
  await writeStages(
    path.join(stageDir, 'stages-2'),
    buildStageGraphs(entry.weights, evenBoundaries(OPTIONS.layers, 2)),
    { source: await graphVersion(path.join(modelDir, 'onnx', 'model.onnx')) },
  );
  await copyFile(path.join(entry.dir, 'config.json'), path.join(stageDir, 'config.json'));
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      DATA_DIR: path.join(dir, 'data'),
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: manifestPath,
      MODEL_CACHE_DIR: path.join(dir, 'server-cache'),
      DOWNLOAD_DISK_MARGIN_BYTES: '0',
    }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  // The server holds the model's files (the tokenizer is what a pipeline job reads of them), as after a download.
  const catalogued = app.models.manifest.find((m) => m.id === MODEL);
  if (!catalogued) throw new Error('the catalogue lacks the model');
  await fetchForServing(app.models.downloader, catalogued);
  const user = await db.database.prisma.user.create({
    data: { kind: 'ACCOUNT', username: 'pipeapi', displayName: 'pipeapi' },
    select: { id: true },
  });
  userId = user.id;
  client = new OpenAI({
    apiKey: (await createApiKey(db.database.prisma, user.id, 'key')).key,
    baseURL: `${base}/v1`,
    maxRetries: 0,
  });
  const engine = new InferenceEngine({ modelHost: `${hub.origin}/`, cacheDir: path.join(dir, 'engine') });
  await engine.load(entry.model, 'auto', () => {});
  short = await engine.generate(messages, { temperature: 0, topP: 1, maxNewTokens: 20 }, () => {});
  await engine.reset();
  long = await engine.generate(messages, { temperature: 0, topP: 1, maxNewTokens: LONG }, () => {});
  await engine.unload();
}, 300_000);

afterAll(async () => {
  await Promise.all(stages.map((peer) => peer.stop().catch(() => undefined)));
  await app?.close();
  await db?.cleanup();
  await hub?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

/**
 * A headless stage peer of the global room, as `npm run peer -- --model pipeline-api --stage 0-2 --stage-dir DIR`;
 * `auto`: one that cuts whatever layers a requester's plan gives it from the whole graph (with room for all four);
 * `corruptTokens`: a dishonest last stage (test only).
 */
async function stagePeer(
  name: string,
  layers: LayerRange | 'auto',
  options: { corruptTokens?: boolean } = {},
): Promise<HeadlessPeer> {
  const peer = new HeadlessPeer({
    server: base,
    room: 'global',
    name,
    model: MODEL,
    stage: layers,
    stageDir: layers === 'auto' ? modelDir : stageDir,
    ...(layers === 'auto' ? { stageMemoryMb: 8 } : {}),
    cacheDir: path.join(dir, `peer-${name}`),
    threads: 1,
    ...options,
  });
  stages.push(peer);
  await peer.start();
  return peer;
}

/** The stage peers still running. */
const running = () => stages.filter((peer) => peer.node);

/**
 * Until the server's member of the room sees every running stage peer's stages with its frame channel open, sees
 * none of `gone`, and every stage peer has its frame channels to the others (a chain's own hops).
 */
async function memberSeesStages(gone: HeadlessPeer[] = []) {
  const member = await app.meshGateway.member('global', userId);
  const node = member.node!;
  const names = new Set(gone.map((peer) => peer.status().name));
  await expect
    .poll(
      () => {
        const seen = node.list().filter((p) => p.capabilities?.pipeline && node.stages.wire(p.peerId));
        const linked = running().every((s) => {
          const others = s.node?.list().filter((p) => p.capabilities?.pipeline) ?? [];
          return others.length === running().length - 1 && others.every((p) => s.node?.stages.wire(p.peerId));
        });
        const left = node.list().every((p) => !names.has(p.name));
        return linked && left ? seen.length : -1;
      },
      { timeout: 90_000, interval: 200 },
    )
    .toBe(running().length);
  return node;
}

/** The key's latest job on the model, with its peers and check, once its spot check is recorded. */
async function checkedJob() {
  const latest = () =>
    db.database.prisma.inferenceJob.findFirstOrThrow({
      where: { modelId: MODEL },
      orderBy: { createdAt: 'desc' },
      select: {
        id: true,
        outcome: true,
        checkResult: true,
        peers: { select: { displayName: true, role: true }, orderBy: { displayName: 'asc' } },
        mismatches: { select: { peerName: true }, orderBy: { peerName: 'asc' } },
      },
    });
  await expect.poll(async () => (await latest()).checkResult, { timeout: 60_000 }).not.toBeNull();
  return latest();
}

const refusal = (error: unknown) => error as { status?: number; message?: string; code?: string };

describe('a model whose layers stage peers host, over /v1', () => {
  it('is refused with 503 while no chain of stage peers holds every layer', async () => {
    // Real answers, long enough to outlast an abort (a random model's greedy answer that ended early would not).
    expect(short.tokenIds.length).toBeGreaterThan(4);
    expect(long.tokenIds).toHaveLength(LONG);
    await stagePeer('StageA', [0, 2]);
    const none = await client.chat.completions.create(greedy).catch((error: unknown) => error);
    expect(none).toBeInstanceOf(OpenAI.InternalServerError);
    expect(refusal(none)).toMatchObject({ status: 503, code: 'unavailable' });
    expect(refusal(none).message).toMatch(/no chain of its stage peers there holds every layer/);
    expect((await listedModels(client)).find((m) => m.id === MODEL)).toBeUndefined();
  }, 120_000);

  it('is listed by GET /v1/models as a pipeline once stages cover every layer, asking the presence once', async () => {
    await stagePeer('StageB', [2, 4]);
    await expect
      .poll(async () => (await listedModels(client)).find((m) => m.id === MODEL), { timeout: 60_000 })
      .toMatchObject({ id: MODEL, owned_by: 'mesh-pipeline', rooms: ['global'] });
    // One ask of the signaling layer's rooms per listing (across nodes, each is a round trip through Redis).
    const asked = vi.spyOn(app.mesh, 'in');
    try {
      await listedModels(client);
      expect(asked.mock.calls.filter(([rooms]) => Array.isArray(rooms))).toHaveLength(1);
    } finally {
      asked.mockRestore();
    }
  }, 120_000);

  it('answers whole and streamed with the engine’s greedy answer on the whole model, and records the job', async () => {
    const records = () => db.database.prisma.inferenceJob.count({ where: { modelId: MODEL } });
    const whole = await client.chat.completions.create(greedy);
    expect(whole).toMatchObject({ object: 'chat.completion', model: MODEL });
    expect(whole.choices[0]?.message.content).toBe(short.text);
    expect(whole.usage?.completion_tokens).toBe(short.tokenIds.length);
    expect(whole.choices[0]?.finish_reason).toBe(short.tokenIds.length === 20 ? 'length' : 'stop');
    await expect.poll(records, { timeout: 10_000 }).toBe(1);

    const stream = await client.chat.completions.create({
      ...greedy,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = '';
    let usage = null;
    let deltas = 0;
    let duringAnswer = -1;
    let firstChunkAt = 0;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content ?? '';
      if (delta && !firstChunkAt) firstChunkAt = Date.now();
      streamed += delta;
      usage = chunk.usage ?? usage;
      // Nothing is written while the answer streams (its first half: after the last token it may be).
      if (delta && ++deltas <= 5) duringAnswer = Math.max(duringAnswer, await records());
    }
    expect(deltas).toBeGreaterThan(1);
    expect(streamed).toBe(short.text);
    expect(usage).toMatchObject({ completion_tokens: short.tokenIds.length });
    expect(duringAnswer).toBe(1);
    await expect.poll(records, { timeout: 10_000 }).toBe(2);
    const record = await db.database.prisma.inferenceJob.findFirstOrThrow({
      where: { modelId: MODEL },
      orderBy: { createdAt: 'desc' },
      select: {
        outcome: true,
        route: true,
        tokensOut: true,
        createdAt: true,
        server: { select: { displayName: true } },
        stages: true,
        peers: {
          select: { displayName: true, role: true, layerFrom: true, layerTo: true },
          orderBy: { displayName: 'asc' },
        },
      },
    });
    expect(record).toMatchObject({
      outcome: 'COMPLETED',
      route: 'MESH',
      tokensOut: short.tokenIds.length,
      // The last stage samples the tokens.
      server: { displayName: 'StageB' },
      // The shape jobs.start gives a pipeline job: how many stages, each stage's peer a server with its layers.
      stages: 2,
      peers: [
        { displayName: 'StageA', role: 'SERVER', layerFrom: 0, layerTo: 2 },
        { displayName: 'StageB', role: 'SERVER', layerFrom: 2, layerTo: 4 },
      ],
    });
    expect(record.createdAt.getTime()).toBeLessThanOrEqual(firstChunkAt);
  }, 120_000);

  it('answers a conversation longer than the model’s context with its oldest turns left out', async () => {
    const plain = await client.chat.completions.create(greedy);
    const asked = plain.usage?.prompt_tokens ?? 0;
    expect(asked).toBeGreaterThan(0);
    // Past the context of 1024 with the answer's 20 tokens: the first two turns go, the last one alone fits.
    const long = {
      ...greedy,
      messages: [
        { role: 'user' as const, content: 'the sea and the ships '.repeat(400) },
        { role: 'assistant' as const, content: 'Aye.' },
        ...messages,
      ],
    };
    const fitted = await client.chat.completions.create(long);
    expect(fitted.choices[0]?.message.content).toBe(short.text);
    expect(fitted.usage?.prompt_tokens).toBe(asked);
    expect(fitted.usage?.completion_tokens).toBe(short.tokenIds.length);
    const record = await db.database.prisma.inferenceJob.findFirstOrThrow({
      where: { modelId: MODEL },
      orderBy: { createdAt: 'desc' },
      select: { tokensIn: true, outcome: true },
    });
    expect(record).toMatchObject({ tokensIn: asked, outcome: 'COMPLETED' });
  }, 120_000);

  it('refuses with 400 context_length_exceeded a last message that alone fills the context, before any stage runs', async () => {
    const tooLong = { ...greedy, messages: [{ role: 'user' as const, content: 'the sea and the ships '.repeat(400) }] };
    const refused = await client.chat.completions.create(tooLong).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refusal(refused)).toMatchObject({ status: 400, code: 'context_length_exceeded' });
    expect(refusal(refused).message).toMatch(/no room for an answer in pipeline-api's context of 1024/);
    expect(stages.map((peer) => peer.node?.stages.outstanding())).toEqual([0, 0]);
  });

  it('ends the job on both stage peers when the client aborts mid-stream, and records it cancelled', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { ...greedy, max_tokens: LONG, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    let open: number[] = [];
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content && ++chunks === 3) {
        // The job is open on both stages now.
        open = stages.map((peer) => peer.node?.stages.outstanding() ?? 0);
        controller.abort();
        break;
      }
    }
    expect(open).toEqual([1, 1]);
    await expect.poll(() => stages.map((peer) => peer.node?.stages.outstanding()), { timeout: 10_000 }).toEqual([0, 0]);
    // Its record is written all the same, once the job is over.
    await expect
      .poll(
        async () =>
          (
            await db.database.prisma.inferenceJob.findFirst({
              where: { modelId: MODEL, outcome: { not: 'COMPLETED' } },
              select: { outcome: true },
            })
          )?.outcome,
        { timeout: 10_000 },
      )
      .toBe('CANCELLED');
    const cancelled = await db.database.prisma.inferenceJob.findFirstOrThrow({
      where: { modelId: MODEL, outcome: 'CANCELLED' },
      select: { tokensOut: true, peers: { select: { role: true } } },
    });
    expect(cancelled.peers).toEqual([{ role: 'SERVER' }, { role: 'SERVER' }]);
    // Stopped well before the LONG tokens it would have made.
    expect(cancelled.tokensOut).toBeGreaterThanOrEqual(3);
    expect(cancelled.tokensOut).toBeLessThan(LONG / 2);
  }, 120_000);

  it('spot-checks an answer at the room’s rate (newcomers always) with another chain of stage peers, and records the check', async () => {
    // A second chain of other users (each headless peer is a guest of its own): the checker of whichever serves.
    await Promise.all([stagePeer('CheckA', [0, 2]), stagePeer('CheckB', [2, 4])]);
    await memberSeesStages();
    const answer = await client.chat.completions.create(greedy);
    expect(answer.choices[0]?.message.content).toBe(short.text);
    const job = await checkedJob();
    expect(job).toMatchObject({ outcome: 'COMPLETED', checkResult: 'MATCH', mismatches: [] });
    const servers = job.peers.filter((p) => p.role === 'SERVER').map((p) => p.displayName);
    const checkers = job.peers.filter((p) => p.role === 'CHECKER').map((p) => p.displayName);
    expect(servers).toHaveLength(2);
    expect(checkers).toHaveLength(2);
    // The checkers are the other chain: one [0, 2] and one [2, 4] peer, none of the answer's.
    expect([...servers, ...checkers].sort()).toEqual(['CheckA', 'CheckB', 'StageA', 'StageB']);
  }, 180_000);

  it('catches a last stage that lies about its tokens: two chains agree against it, and the stage that lied is found and recorded against', async () => {
    // The honest [2, 4] peers leave; the liar is then the only peer holding layers 2–4, so the answer runs through
    // it. Two `auto` peers that hold nothing yet are the checkers, each cutting the whole model.
    const honest = stages.filter((peer) => ['StageB', 'CheckB'].includes(peer.status().name));
    await Promise.all(honest.map((peer) => peer.stop()));
    stages.splice(0, stages.length, ...stages.filter((peer) => !honest.includes(peer)));
    await Promise.all([
      stagePeer('Liar', [2, 4], { corruptTokens: true }),
      stagePeer('CheckX', 'auto'),
      stagePeer('CheckY', 'auto'),
    ]);
    const node = await memberSeesStages(honest);
    const lied = await client.chat.completions.create(greedy);
    expect(lied.choices[0]?.message.content).not.toBe(short.text);
    const job = await checkedJob();
    expect(job).toMatchObject({ outcome: 'COMPLETED', checkResult: 'MISMATCH' });
    const servers = job.peers.filter((p) => p.role === 'SERVER').map((p) => p.displayName);
    expect(servers).toContain('Liar');
    // The checkers are the two `auto` peers and the other [0, 2] peer, which stood in for the first stage while the
    // check looked for the stage that lied (src/shared/pipeline/localize.ts): with it in place the tokens stayed wrong.
    const first = servers.find((name) => name !== 'Liar');
    expect(['StageA', 'CheckA']).toContain(first);
    const standIn = first === 'StageA' ? 'CheckA' : 'StageA';
    const checkers = job.peers.filter((p) => p.role === 'CHECKER').map((p) => p.displayName);
    expect(checkers.sort()).toEqual([standIn, 'CheckX', 'CheckY'].sort());
    // Only the liar is recorded against and excluded; the honest first stage of its chain is not.
    expect(job.mismatches.map((m) => m.peerName)).toEqual(['Liar']);
    for (const name of servers) {
      const peer = node.list().find((p) => p.name === name)!;
      expect(node.requester.isExcluded({ userId: peer.userId })).toBe(name === 'Liar');
    }
  }, 240_000);
});
