// The files the server fetches for a Hub model that lists none are exactly the files transformers.js then
// requests through the server's /models route (none missing, none extra), for each dtype, with and without
// external data: the rules in src/server/models/transformers-files.ts held against transformers.js itself.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import { type Content, type FakeHub, bufferContent, generatedContent } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { DTYPE_SUFFIX } from '../src/server/models/transformers-files.ts';
import type { Dtype } from '../src/shared/schemas/models.ts';
import { useHubApp, writeCatalogue } from './support/hub-app.ts';

const DTYPES: Dtype[] = ['fp32', 'fp16', 'q8', 'q4', 'q4f16', 'int8', 'uint8', 'bnb4'];
type External = 'none' | 'all' | 'per-file';
const CASES = DTYPES.flatMap((dtype, i) => [
  { dtype, external: 'none' as External },
  // Both forms transformers.js reads: one value for every file, or a chunk count per file name.
  { dtype, external: (i % 2 === 0 ? 'all' : 'per-file') as External },
]);
const idOf = (c: (typeof CASES)[number]) => `m-${c.dtype}-${c.external}`;

const commits = new Map<string, string>();
const fixture = useHubApp({ name: 'tfjs-files', username: 'tfjs-files', listen: true, publish });

async function publish(hub: FakeHub, dir: string): Promise<string> {
  const local = path.join(dir, 'model');
  await generateRandomModel(local, { layers: 1, hidden: 16, heads: 2, seed: 5 });
  const read = async (name: string) => bufferContent(await readFile(path.join(local, name)));
  const config = JSON.parse(await readFile(path.join(local, 'config.json'), 'utf8')) as Record<string, unknown>;
  const graph = await read('onnx/model.onnx');
  const common = {
    'generation_config.json': await read('generation_config.json'),
    'tokenizer.json': await read('tokenizer.json'),
    'tokenizer_config.json': await read('tokenizer_config.json'),
    'README.md': bufferContent('# a model card the loader never reads'),
  };
  for (const c of CASES) {
    const files: Record<string, Content> = { ...common };
    // Every dtype's graph (and external data, three chunks of it) is in the repo: only the one asked for may be fetched.
    for (const [d, suffix] of Object.entries(DTYPE_SUFFIX)) {
      files[`onnx/model${suffix}.onnx`] = graph;
      if (c.external === 'none') continue;
      for (const chunk of ['', '_1', '_2'])
        files[`onnx/model${suffix}.onnx_data${chunk}`] = generatedContent(4096, d.length);
    }
    const fullName = `model${DTYPE_SUFFIX[c.dtype]}.onnx`;
    const external = c.external === 'all' ? true : c.external === 'per-file' ? { [fullName]: 2 } : undefined;
    const jsConfig = {
      kv_cache_dtype: { q4f16: 'float16', fp16: 'float16' },
      ...(external ? { use_external_data_format: external } : {}),
    };
    files['config.json'] = bufferContent(JSON.stringify({ ...config, 'transformers.js_config': jsConfig }));
    commits.set(idOf(c), (await hub.addRepo(`mesh/${idOf(c)}`, files)).commit);
  }
  return writeCatalogue(
    dir,
    CASES.map((c) => ({
      id: idOf(c),
      name: idOf(c),
      repo: `mesh/${idOf(c)}`,
      revision: 'main',
      task: 'text-generation',
      dtype: { webgpu: c.dtype, wasm: c.dtype },
      contextLength: 256,
      license: 'mit',
    })),
  );
}

/** The repo files transformers.js asks the server for (any method, whatever the answer). */
async function requestedBy(repo: string, load: () => Promise<void>): Promise<string[]> {
  const requested = new Set<string>();
  const prefix = `${fixture.origin}/models/${repo}/resolve/`;
  const original = env.fetch;
  env.fetch = (input, init) => {
    const url = String(input);
    if (url.startsWith(prefix)) requested.add(decodeURIComponent(url.slice(prefix.length).replace(/^[^/]+\//, '')));
    return original(input, init);
  };
  try {
    await load();
  } finally {
    env.fetch = original;
  }
  return [...requested].sort();
}

describe('files as transformers.js picks them', () => {
  it.each(CASES)(
    'fetches exactly what transformers.js requests for $dtype (external data: $external)',
    async (c) => {
      const id = idOf(c);
      await fixture.download({ id });
      const status = await fixture.app.models.downloader.status(id);
      expect(status?.error).toBeNull();
      expect(status?.phase).toBe('ready');
      const fetched = (status?.files ?? []).map((f) => f.path).sort();

      env.allowLocalModels = false;
      env.allowRemoteModels = true;
      env.remoteHost = `${fixture.origin}/models/`;
      env.remotePathTemplate = '{model}/resolve/{revision}/';
      env.useFSCache = true;
      env.cacheDir = path.join(fixture.dir, 'tfjs-cache', id);
      const revision = commits.get(id) ?? '';
      const requested = await requestedBy(`mesh/${id}`, async () => {
        await AutoTokenizer.from_pretrained(`mesh/${id}`, { revision });
        const model = await AutoModelForCausalLM.from_pretrained(`mesh/${id}`, {
          revision,
          dtype: c.dtype,
          device: 'cpu',
        });
        await model.dispose();
      });
      expect(fetched).toEqual(requested);
      // The rule itself, spelled out for this case: q8 is `_quantized`, chunks are `_data`, `_data_1`.
      const weights = fetched.filter((f) => f.startsWith('onnx/'));
      const graph = `onnx/model${DTYPE_SUFFIX[c.dtype]}.onnx`;
      const chunks = c.external === 'none' ? [] : c.external === 'all' ? ['_data'] : ['_data', '_data_1'];
      expect(weights).toEqual([graph, ...chunks.map((s) => `${graph}${s}`)].sort());
    },
    120_000,
  );
});
