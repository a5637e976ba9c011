import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MANIFEST, ManifestError, loadManifest } from './manifest.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-manifest-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const model = {
  id: 'my-model',
  name: 'My model',
  repo: 'me/my-model',
  revision: 'main',
  task: 'text-generation',
  dtype: { webgpu: 'q4f16', wasm: 'q4' },
  files: [{ path: 'config.json' }, { path: 'onnx/model_q4.onnx' }],
  contextLength: 2048,
  license: 'mit',
};

async function manifestFile(content: unknown): Promise<string> {
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

describe('the model catalogue', () => {
  it('lists curated browser models with a dtype per backend, their files left to be derived as transformers.js picks them', () => {
    expect(BUILTIN_MANIFEST.map((m) => m.id)).toEqual(
      expect.arrayContaining(['smollm2-135m-instruct', 'qwen2.5-0.5b-instruct', 'llama-3.2-1b-instruct']),
    );
    for (const entry of BUILTIN_MANIFEST) {
      // Hard-coded names were wrong for q8 (`model_quantized.onnx`) and blind to external data: see transformers-files.ts.
      expect(entry.files).toEqual([]);
    }
  });

  it('is extended by MANIFEST_PATH by default, and replaced with mode "replace"', async () => {
    const extended = await loadManifest(await manifestFile({ models: [model] }));
    expect(extended.map((m) => m.id)).toEqual([...BUILTIN_MANIFEST.map((m) => m.id), 'my-model']);
    const replaced = await loadManifest(await manifestFile({ mode: 'replace', models: [model] }));
    expect(replaced.map((m) => m.id)).toEqual(['my-model']);
  });

  it('refuses a bad file with a clear message naming the field', async () => {
    await expect(loadManifest(await manifestFile('{ not json'))).rejects.toThrowError(ManifestError);
    await expect(loadManifest(path.join(dir, 'absent.json'))).rejects.toThrowError(
      /Invalid MANIFEST_PATH .*absent\.json: ENOENT/,
    );
    await expect(
      loadManifest(await manifestFile({ models: [{ ...model, files: [{ path: '../etc/passwd' }] }] })),
    ).rejects.toThrowError(/models\.0\.files\.0\.path/);
    await expect(
      loadManifest(await manifestFile({ models: [{ ...model, repo: 'http://evil.example/x' }] })),
    ).rejects.toThrowError(/models\.0\.repo/);
    await expect(loadManifest(await manifestFile({ models: [model, model] }))).rejects.toThrowError(/unique/);
    await expect(
      loadManifest(await manifestFile({ models: [model, { ...model, id: 'my-model-fp16' }] })),
    ).rejects.toThrowError(/my-model and my-model-fp16 share the repo me\/my-model/);
  });
});
