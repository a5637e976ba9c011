// Tiny models shaped like real decoder exports (grouped-query attention, external data in one file or in chunks,
// fp16 with a float16 cache, q4 through MatMulNBits, q4f16 (MatMulNBits in float16), transformers.js_config, a list of EOS ids, a system turn in
// the chat template; scripts/tiny-model/export-shapes.ts) download through the server, which derives their files
// from the repo as transformers.js picks them, and load in the engine in Node (onnxruntime-node) with the greedy
// tokens of the reference forward pass. The same models in Chromium: tests/e2e/export-shapes.test.ts.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Content, FakeHub, bufferContent } from '../scripts/fake-hub.ts';
import { buildApp } from '../src/server/app.ts';
import type { EngineMessage } from '../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { signUpInjected } from './support/accounts.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import {
  ALL_EXPORT_SHAPE_NAMES,
  type PublishedExport,
  engineModelFromServer,
  publishExportShapes,
  referenceTokens,
} from './support/export-fixtures.ts';

const MESSAGES: EngineMessage[] = [
  { role: 'system', content: 'You answer in riddles.' },
  { role: 'user', content: 'The quick brown fox jumps over the lazy dog.' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 16 };

let dir: string;
let hub: FakeHub;
let db: TestDatabase;
let app: FastifyInstance;
let origin: string;
let published: Record<string, PublishedExport>;
/** A repo like Llama 3.2's, whose generation_config lists an EOS id besides the tokenizer's eos_token. */
const EOS_LIST = 'eos-list';
let eosList: { stopId: number; expected: number[] };

/**
 * Publishes gqa-external again as `mesh/eos-list` with a third EOS id in config.json and generation_config.json:
 * the token the reference says the model answers fourth, so the answer must stop there.
 */
async function publishEosList(manifestPath: string): Promise<void> {
  const base = published['gqa-external'];
  if (!base) throw new Error('gqa-external was not published');
  const models = path.join(dir, 'models');
  const free = await referenceTokens(models, { ...base, eosIds: [] }, MESSAGES, GREEDY.maxNewTokens);
  const stopId = free.tokens[3] ?? -1;
  const eosIds = [...base.eosIds, stopId];
  const files: Record<string, Content> = {};
  for (const file of base.files) {
    const bytes = await readFile(path.join(models, base.id, file));
    if (file !== 'config.json' && file !== 'generation_config.json') files[file] = bufferContent(bytes);
    else files[file] = bufferContent(JSON.stringify({ ...JSON.parse(bytes.toString('utf8')), eos_token_id: eosIds }));
  }
  await hub.addRepo(`mesh/${EOS_LIST}`, files);
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { models: Record<string, unknown>[] };
  const entry = manifest.models.find((m) => m.id === base.id);
  manifest.models.push({ ...entry, id: EOS_LIST, name: EOS_LIST, repo: `mesh/${EOS_LIST}` });
  await writeFile(manifestPath, JSON.stringify(manifest));
  const { tokens } = await referenceTokens(models, { ...base, eosIds }, MESSAGES, GREEDY.maxNewTokens);
  eosList = { stopId, expected: tokens };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-export-shapes-'));
  hub = new FakeHub();
  await hub.start();
  const { manifestPath, ...rest } = await publishExportShapes(hub, path.join(dir, 'models'), ALL_EXPORT_SHAPE_NAMES);
  published = rest.published;
  await publishEosList(manifestPath);
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: manifestPath,
      MODEL_CACHE_DIR: path.join(dir, 'cache'),
      DOWNLOAD_DISK_MARGIN_BYTES: '0',
    }),
    database: db.database,
  });
  origin = await app.listen({ host: '127.0.0.1', port: 0 });
  const cookie = await signUpInjected(app, 'export-shapes');
  for (const id of [...ALL_EXPORT_SHAPE_NAMES, EOS_LIST]) {
    const started = await app.inject({
      method: 'POST',
      url: '/api/trpc/models.download',
      payload: { id },
      headers: { cookie },
    });
    expect(started.statusCode).toBe(200);
  }
  for (const id of [...ALL_EXPORT_SHAPE_NAMES, EOS_LIST]) await app.models.downloader.settled(id);
}, 120_000);

afterAll(async () => {
  await app?.close();
  await db?.cleanup();
  await hub?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe.each(ALL_EXPORT_SHAPE_NAMES)('the export-shaped model %s', (name) => {
  it('is fetched whole by the server, weights as transformers.js names them for its dtype', async () => {
    const model = published[name];
    if (!model) throw new Error(`${name} was not published`);
    const status = await app.models.downloader.status(name);
    expect(status?.error).toBeNull();
    expect(status?.phase).toBe('ready');
    // The repo holds one dtype: every file of it is needed, the model card is not.
    expect((status?.files ?? []).map((f) => f.path).sort()).toEqual([...model.files].sort());
    const config = JSON.parse(await readFile(path.join(dir, 'models', name, 'config.json'), 'utf8')) as {
      num_attention_heads: number;
      num_key_value_heads: number;
      eos_token_id: number[];
      'transformers.js_config': Record<string, unknown>;
    };
    expect(config.num_key_value_heads).toBeLessThan(config.num_attention_heads);
    expect(config.eos_token_id).toEqual(model.eosIds);
    expect(config['transformers.js_config']).toHaveProperty('kv_cache_dtype');
    // The chat template puts the conversation's system turn first, or its own default when there is none.
    const models = path.join(dir, 'models');
    const own = await referenceTokens(models, model, MESSAGES, 0);
    expect(own.prompt).toMatch(/^<\|im_start\|>system\nYou answer in riddles\.<\|im_end\|>\n<\|im_start\|>user\n/);
    const fallback = await referenceTokens(models, model, MESSAGES.slice(1), 0);
    expect(fallback.prompt).toMatch(
      /^<\|im_start\|>system\nYou are a helpful assistant\.<\|im_end\|>\n<\|im_start\|>user\n/,
    );
  });

  it('loads through the proxy in Node and gives the reference greedy tokens', async () => {
    const model = published[name];
    if (!model) throw new Error(`${name} was not published`);
    const reference = await referenceTokens(path.join(dir, 'models'), model, MESSAGES, GREEDY.maxNewTokens);
    const engine = new InferenceEngine({ modelHost: `${origin}/models/`, cacheDir: path.join(dir, 'node-cache') });
    try {
      const loaded = await engine.load(await engineModelFromServer(origin, name), 'auto', () => {});
      expect(loaded).toMatchObject({ backend: 'cpu', dtype: model.shape.dtype });
      const result = await engine.generate(MESSAGES, GREEDY, () => {});
      expect(result.tokenIds).toEqual(reference.tokens);
      const last = result.tokenIds.at(-1) ?? -1;
      expect(result.reason).toBe(model.eosIds.includes(last) ? 'eos' : 'length');
    } finally {
      await engine.unload();
    }
  }, 60_000);
});

describe('a model whose generation_config lists several EOS ids', () => {
  it("stops at any of them, not only at the tokenizer's eos_token", async () => {
    const base = published['gqa-external'];
    if (!base) throw new Error('gqa-external was not published');
    // The id is an ordinary token the model says, in no list but this repo's.
    expect(base.eosIds).not.toContain(eosList.stopId);
    expect(eosList.expected.at(-1)).toBe(eosList.stopId);
    expect(eosList.expected.length).toBeLessThan(GREEDY.maxNewTokens);
    const engine = new InferenceEngine({ modelHost: `${origin}/models/`, cacheDir: path.join(dir, 'node-cache') });
    try {
      await engine.load(await engineModelFromServer(origin, EOS_LIST), 'auto', () => {});
      const result = await engine.generate(MESSAGES, GREEDY, () => {});
      expect(result.tokenIds).toEqual(eosList.expected);
      expect(result.reason).toBe('eos');
    } finally {
      await engine.unload();
    }
  }, 60_000);
});
