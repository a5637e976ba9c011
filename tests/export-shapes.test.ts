// Tiny models shaped like real decoder exports (grouped-query attention, external data in one file or in chunks,
// fp16 with a float16 cache, q4 through MatMulNBits, transformers.js_config, a list of EOS ids, a system turn in
// the chat template; scripts/tiny-model/export-shapes.ts) download through the server, which derives their files
// from the repo as transformers.js picks them, and load in the engine in Node (onnxruntime-node) with the greedy
// tokens of the reference forward pass. The same models in Chromium: tests/e2e/export-shapes.test.ts.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../scripts/fake-hub.ts';
import { buildApp } from '../src/server/app.ts';
import type { EngineMessage } from '../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { signUpInjected } from './support/accounts.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import {
  EXPORT_SHAPE_NAMES,
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

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-export-shapes-'));
  hub = new FakeHub();
  await hub.start();
  const { manifestPath, ...rest } = await publishExportShapes(hub, path.join(dir, 'models'));
  published = rest.published;
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
  for (const id of EXPORT_SHAPE_NAMES) {
    const started = await app.inject({
      method: 'POST',
      url: '/api/trpc/models.download',
      payload: { id },
      headers: { cookie },
    });
    expect(started.statusCode).toBe(200);
  }
  for (const id of EXPORT_SHAPE_NAMES) await app.models.downloader.settled(id);
}, 120_000);

afterAll(async () => {
  await app?.close();
  await db?.cleanup();
  await hub?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe.each(EXPORT_SHAPE_NAMES)('the export-shaped model %s', (name) => {
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
