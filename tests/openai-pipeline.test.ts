// The OpenAI-compatible API asking a pipeline (docs/pipeline.md, "Asking from /v1"): a catalogue model nobody in the
// room shares whole, whose layers two headless stage peers host (`--stage 0-2` and `--stage 2-4` of a generated
// 4-layer model, onnxruntime-node, werift data channels), driven by the official `openai` client against a listening
// server whose requester member of the room runs it as a pipeline job, with the tokenizer from the server's own
// model cache. Whole and streamed answers equal the inference engine's greedy answer on the whole model; GET
// /v1/models lists the model as a pipeline; a client that aborts mid-stream ends the job on both stage peers; the
// job is recorded once it is over, naming both stage peers; a room whose stages do not cover every layer is refused
// with 503 in OpenAI's shape.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../scripts/fake-hub.ts';
import { evenBoundaries } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
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
  // one peer would run the whole model.
  stageDir = path.join(dir, 'stage-files');
  await writeStages(
    path.join(stageDir, 'stages-2'),
    buildStageGraphs(entry.weights, evenBoundaries(OPTIONS.layers, 2)),
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

/** A headless stage peer of the global room, as `npm run peer -- --model pipeline-api --stage 0-2 --stage-dir DIR`. */
async function stagePeer(name: string, layers: LayerRange): Promise<HeadlessPeer> {
  const peer = new HeadlessPeer({
    server: base,
    room: 'global',
    name,
    model: MODEL,
    stage: layers,
    stageDir,
    cacheDir: path.join(dir, `peer-${name}`),
    threads: 1,
  });
  stages.push(peer);
  await peer.start();
  return peer;
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

  it('is listed by GET /v1/models as a pipeline once stages cover every layer', async () => {
    await stagePeer('StageB', [2, 4]);
    await expect
      .poll(async () => (await listedModels(client)).find((m) => m.id === MODEL), { timeout: 60_000 })
      .toMatchObject({ id: MODEL, owned_by: 'mesh-pipeline', rooms: ['global'] });
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

  it('refuses a prompt longer than the model’s context with 400 context_length_exceeded, before any stage runs', async () => {
    const tooLong = { ...greedy, messages: [{ role: 'user' as const, content: 'the sea and the ships '.repeat(400) }] };
    const refused = await client.chat.completions.create(tooLong).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refusal(refused)).toMatchObject({ status: 400, code: 'context_length_exceeded' });
    expect(refusal(refused).message).toMatch(/fill pipeline-api's context of 1024/);
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
});
