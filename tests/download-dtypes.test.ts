// Only the dtype a device runs is fetched (README, the download proxy): a WASM device's download takes the WASM
// dtype's graph and external data with the config and tokenizer files, nothing of the WebGPU dtype; a later WebGPU
// download of the same model fetches only what is still missing. Each has its own status, and the catalogue lists both.
import { describe, expect, it } from 'vitest';
import { type FakeHub, bufferContent, generatedContent } from '../scripts/fake-hub.ts';
import type { CatalogueEntry } from '../src/shared/schemas/models.ts';
import { useHubApp, writeCatalogue } from './support/hub-app.ts';

const REPO = 'mesh/two-backends';
const fixture = useHubApp({ name: 'dtypes', username: 'dtypes', publish });

async function publish(hub: FakeHub, dir: string): Promise<string> {
  const files: Record<string, ReturnType<typeof bufferContent>> = {
    'config.json': bufferContent(
      JSON.stringify({ model_type: 'llama', 'transformers.js_config': { use_external_data_format: true } }),
    ),
    'generation_config.json': bufferContent('{"eos_token_id": 2}'),
    'tokenizer.json': bufferContent('{"version":"1.0"}'),
    'tokenizer_config.json': bufferContent('{"chat_template":"x"}'),
    'README.md': bufferContent('---\nlicense: mit\n---\n# card'),
  };
  // Every dtype's graph and external data is there: only the one a device runs may be fetched.
  for (const [i, suffix] of ['', '_fp16', '_quantized', '_q4', '_q4f16'].entries()) {
    files[`onnx/model${suffix}.onnx`] = generatedContent(2048 + i, i + 1);
    files[`onnx/model${suffix}.onnx_data`] = generatedContent(64 * 1024 + i, i + 11);
  }
  await hub.addRepo(REPO, files);
  await hub.addRepo(`${REPO}-at-once`, files);
  return writeCatalogue(dir, [
    {
      id: 'two',
      name: 'Two backends',
      repo: REPO,
      revision: 'main',
      task: 'text-generation',
      dtype: { webgpu: 'q4f16', wasm: 'q8' },
      contextLength: 256,
      license: 'mit',
    },
    {
      id: 'at-once',
      name: 'Both at once',
      repo: `${REPO}-at-once`,
      revision: 'main',
      task: 'text-generation',
      dtype: { webgpu: 'q4f16', wasm: 'q8' },
      contextLength: 256,
      license: 'mit',
    },
  ]);
}

/** The repo files the fake Hub was asked for (resolve requests; their CDN redirects are the same files). */
function filesFetched(repo = REPO): string[] {
  const prefix = `/${repo}/resolve/`;
  return fixture.hub.requests
    .filter((r) => r.path.startsWith(prefix))
    .map((r) => r.path.slice(prefix.length).replace(/^[^/]+\//, ''))
    .sort();
}

async function status(input: Record<string, string>) {
  const response = await fixture.app.inject(
    `/api/trpc/models.status?input=${encodeURIComponent(JSON.stringify(input))}`,
  );
  return (response.json() as { result: { data: { phase: string; dtype: string; files: { path: string }[] } | null } })
    .result.data;
}

async function catalogue(): Promise<CatalogueEntry[]> {
  const response = await fixture.app.inject({ url: '/api/trpc/manifest.list', headers: { cookie: fixture.cookie } });
  return (response.json() as { result: { data: CatalogueEntry[] } }).result.data;
}

describe('one dtype per device', () => {
  it("a WASM device's download fetches only the WASM dtype's files", async () => {
    fixture.hub.reset();
    await fixture.download({ id: 'two', backend: 'wasm' });
    expect(filesFetched()).toEqual([
      'config.json',
      'generation_config.json',
      'onnx/model_quantized.onnx',
      'onnx/model_quantized.onnx_data',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(await status({ id: 'two', backend: 'wasm' })).toMatchObject({ phase: 'ready', dtype: 'q8' });
    // Named by dtype, it is the same download.
    expect((await status({ id: 'two', dtype: 'q8' }))?.files.map((f) => f.path)).toContain('onnx/model_quantized.onnx');
    expect(await status({ id: 'two', backend: 'webgpu' })).toBeNull();
    const entry = (await catalogue()).find((e) => e.id === 'two');
    expect(entry?.downloads.map((d) => d.dtype)).toEqual(['q8']);
    expect(entry?.files.map((f) => f.path)).not.toContain('onnx/model_q4f16.onnx');
  });

  it('a later WebGPU download of the same model fetches only the rest', async () => {
    fixture.hub.reset();
    await fixture.download({ id: 'two', backend: 'webgpu' });
    // config.json comes from the cache (verified), the tokenizer files too: only the WebGPU weights are new.
    expect(filesFetched()).toEqual(['onnx/model_q4f16.onnx', 'onnx/model_q4f16.onnx_data']);
    const webgpu = await status({ id: 'two', backend: 'webgpu' });
    expect(webgpu).toMatchObject({ phase: 'ready', dtype: 'q4f16' });
    expect(webgpu?.files.map((f) => f.path).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'onnx/model_q4f16.onnx',
      'onnx/model_q4f16.onnx_data',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const entry = (await catalogue()).find((e) => e.id === 'two');
    expect(entry?.downloads.map((d) => d.dtype).sort()).toEqual(['q4f16', 'q8']);
    // Both are served from the cache.
    for (const file of ['onnx/model_q4f16.onnx', 'onnx/model_quantized.onnx_data']) {
      expect((await fixture.app.inject(`/models/${REPO}/resolve/main/${file}`)).statusCode).toBe(200);
    }
  });

  it('asking again for a dtype the server holds fetches nothing', async () => {
    fixture.hub.reset();
    await fixture.download({ id: 'two', dtype: 'q8' });
    expect(filesFetched()).toEqual([]);
  });

  it('two devices asking at once fetch each shared file once, and both downloads finish', async () => {
    fixture.hub.reset();
    const ask = (backend: string) => fixture.askDownload({ id: 'at-once', backend });
    const answers = await Promise.all([ask('wasm'), ask('webgpu')]);
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200]);
    await fixture.app.models.downloader.settled('at-once');
    expect(await status({ id: 'at-once', backend: 'wasm' })).toMatchObject({ phase: 'ready' });
    expect(await status({ id: 'at-once', backend: 'webgpu' })).toMatchObject({ phase: 'ready' });
    expect(filesFetched(`${REPO}-at-once`)).toEqual([
      'config.json',
      'generation_config.json',
      'onnx/model_q4f16.onnx',
      'onnx/model_q4f16.onnx_data',
      'onnx/model_quantized.onnx',
      'onnx/model_quantized.onnx_data',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
  });

  it('refuses a dtype the entry does not run', async () => {
    const response = await fixture.askDownload({ id: 'two', dtype: 'int8' });
    expect(response.statusCode).toBe(400);
    expect((response.json() as { error: { message: string } }).error.message).toBe(
      'Two backends runs q4f16, q8, q4, not int8',
    );
  });
});
