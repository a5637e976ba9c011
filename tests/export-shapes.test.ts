// Tiny models shaped like real decoder exports (grouped-query attention, external data in one file or in chunks,
// fp16 with a float16 cache, q4 through MatMulNBits, q4f16 (MatMulNBits in float16), transformers.js_config, a list of EOS ids, a system turn in
// the chat template; scripts/tiny-model/export-shapes.ts) download through the server, which derives their files
// from the repo as transformers.js picks them, and load in the engine in Node (onnxruntime-node) with the greedy
// tokens of the reference forward pass. The same models in Chromium: tests/e2e/export-shapes.test.ts.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Content, type FakeHub, bufferContent } from '../scripts/fake-hub.ts';
import type { EngineMessage } from '../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import {
  ALL_EXPORT_SHAPE_NAMES,
  type PublishedExport,
  engineModelFromServer,
  publishExportShapes,
  referenceTokens,
} from './support/export-fixtures.ts';
import { useHubApp } from './support/hub-app.ts';

const MESSAGES: EngineMessage[] = [
  { role: 'system', content: 'You answer in riddles.' },
  { role: 'user', content: 'The quick brown fox jumps over the lazy dog.' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 16 };

const fixture = useHubApp({ name: 'export-shapes', username: 'export-shapes', listen: true, publish }, 120_000);
let published: Record<string, PublishedExport>;
/** A repo like Llama 3.2's, whose generation_config lists an EOS id besides the tokenizer's eos_token. */
const EOS_LIST = 'eos-list';
let eosList: { stopId: number; expected: number[] };

/**
 * Publishes gqa-external again as `mesh/eos-list` with a third EOS id in config.json and generation_config.json:
 * the token the reference says the model answers fourth, so the answer must stop there.
 */
async function publishEosList(hub: FakeHub, dir: string, manifestPath: string): Promise<void> {
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

async function publish(hub: FakeHub, dir: string): Promise<string> {
  const { manifestPath, ...rest } = await publishExportShapes(hub, path.join(dir, 'models'), ALL_EXPORT_SHAPE_NAMES);
  published = rest.published;
  await publishEosList(hub, dir, manifestPath);
  return manifestPath;
}

beforeAll(async () => {
  // All asked for first, then awaited: the server fetches them side by side.
  const ids = [...ALL_EXPORT_SHAPE_NAMES, EOS_LIST];
  for (const id of ids) expect((await fixture.askDownload({ id })).statusCode).toBe(200);
  for (const id of ids) await fixture.app.models.downloader.settled(id);
}, 120_000);

describe.each(ALL_EXPORT_SHAPE_NAMES)('the export-shaped model %s', (name) => {
  it('is fetched whole by the server, weights as transformers.js names them for its dtype', async () => {
    const model = published[name];
    if (!model) throw new Error(`${name} was not published`);
    const status = await fixture.app.models.downloader.status(name);
    expect(status?.error).toBeNull();
    expect(status?.phase).toBe('ready');
    // The repo holds one dtype: every file of it is needed, the model card is not.
    expect((status?.files ?? []).map((f) => f.path).sort()).toEqual([...model.files].sort());
    const config = JSON.parse(await readFile(path.join(fixture.dir, 'models', name, 'config.json'), 'utf8')) as {
      num_attention_heads: number;
      num_key_value_heads: number;
      eos_token_id: number[];
      'transformers.js_config': Record<string, unknown>;
    };
    expect(config.num_key_value_heads).toBeLessThan(config.num_attention_heads);
    expect(config.eos_token_id).toEqual(model.eosIds);
    expect(config['transformers.js_config']).toHaveProperty('kv_cache_dtype');
    // The chat template puts the conversation's system turn first, or its own default when there is none.
    const models = path.join(fixture.dir, 'models');
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
    const reference = await referenceTokens(path.join(fixture.dir, 'models'), model, MESSAGES, GREEDY.maxNewTokens);
    const engine = new InferenceEngine({
      modelHost: `${fixture.origin}/models/`,
      cacheDir: path.join(fixture.dir, 'node-cache'),
    });
    try {
      const loaded = await engine.load(await engineModelFromServer(fixture.origin, name), 'auto', () => {});
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
    const engine = new InferenceEngine({
      modelHost: `${fixture.origin}/models/`,
      cacheDir: path.join(fixture.dir, 'node-cache'),
    });
    try {
      await engine.load(await engineModelFromServer(fixture.origin, EOS_LIST), 'auto', () => {});
      const result = await engine.generate(MESSAGES, GREEDY, () => {});
      expect(result.tokenIds).toEqual(eosList.expected);
      expect(result.reason).toBe('eos');
    } finally {
      await engine.unload();
    }
  }, 60_000);
});
