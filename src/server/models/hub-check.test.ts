import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseRepoInput } from '../../shared/schemas/models.ts';
import { TEXT_GENERATION_MODEL_TYPES, WASM_PREFERENCE, addedModelId, chooseDtypes } from './hub-check.ts';
import { DTYPE_SUFFIX } from './transformers-files.ts';

/** The installed transformers.js' sources (the package's entry is dist/transformers.node.cjs; src/ sits beside). */
const transformersRoot = () =>
  path.dirname(path.dirname(createRequire(import.meta.url).resolve('@huggingface/transformers')));

describe('the architectures models.add accepts', () => {
  it('are each a causal LM of transformers.js itself (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)', async () => {
    const registry = await readFile(path.join(transformersRoot(), 'src/models/registry.js'), 'utf8');
    const start = registry.indexOf('export const MODEL_FOR_CAUSAL_LM_MAPPING_NAMES');
    const mapping = registry.slice(start, registry.indexOf(']);', start));
    const types = new Set([...mapping.matchAll(/\['([^']+)',\s*'[A-Za-z0-9_]+'\]/g)].map((m) => m[1]));
    expect(types.size).toBeGreaterThan(30);
    for (const type of TEXT_GENERATION_MODEL_TYPES) expect(types, type).toContain(type);
  });
});

describe('addedModelId', () => {
  it('is readable, a valid catalogue id, and tells revisions apart', () => {
    expect(addedModelId('onnx-community/Qwen2.5-0.5B-Instruct', 'main')).toBe('onnx-community--qwen2.5-0.5b-instruct');
    const pinned = addedModelId('onnx-community/Qwen2.5-0.5B-Instruct', 'v2');
    expect(pinned).toMatch(/^onnx-community--qwen2\.5-0\.5b-instruct-[0-9a-f]{8}$/);
    expect(addedModelId(`a/${'x'.repeat(90)}`, 'main').length).toBeLessThanOrEqual(96);
  });
});

describe('chooseDtypes', () => {
  it('takes f16 weights for WebGPU and integer ones for WASM, and refuses a repo WASM cannot run', () => {
    expect(chooseDtypes(['fp32', 'q4', 'q4f16', 'q8'])).toEqual({ webgpu: 'q4f16', wasm: 'q4' });
    expect(chooseDtypes(['q8'])).toEqual({ webgpu: 'q8', wasm: 'q8' });
    expect(chooseDtypes(['fp32', 'fp16'])).toEqual({ webgpu: 'fp16', wasm: 'fp32' });
    expect(chooseDtypes(['bnb4'])).toBeNull();
    expect(chooseDtypes([])).toBeNull();
  });

  it('gives WASM q4f16 where the repo has no integer weights: before fp32 (a quarter of its bytes)', () => {
    expect(chooseDtypes(['q4f16'])).toEqual({ webgpu: 'q4f16', wasm: 'q4f16' });
    expect(chooseDtypes(['fp32', 'q4f16'])).toEqual({ webgpu: 'q4f16', wasm: 'q4f16' });
    expect(chooseDtypes(['fp16', 'q4f16', 'uint8'])).toEqual({ webgpu: 'q4f16', wasm: 'uint8' });
    expect(chooseDtypes(['fp16'])).toEqual({ webgpu: 'fp16', wasm: 'fp16' });
    expect(chooseDtypes(['fp16', 'bnb4'])).toEqual({ webgpu: 'fp16', wasm: 'fp16' });
  });

  it('offers WASM only dtypes transformers.js 4 itself runs there, by the file name it gives them', async () => {
    const root = transformersRoot();
    // transformers.js' own dtype resolution, as getSession runs it for the `model` session on the wasm device.
    const dtypes = (await import(pathToFileURL(path.join(root, 'src/utils/dtypes.js')).href)) as {
      DEFAULT_DTYPE_SUFFIX_MAPPING: Record<string, string>;
      selectDtype(dtype: string, fileName: string, device: string): string;
    };
    for (const dtype of WASM_PREFERENCE) {
      expect(dtypes.selectDtype(dtype, 'model', 'wasm'), dtype).toBe(dtype);
      expect(dtypes.DEFAULT_DTYPE_SUFFIX_MAPPING[dtype], dtype).toBe(DTYPE_SUFFIX[dtype]);
    }
    // Its one refusal of a dtype on a device (models/session.js getSession): fp16 on WebGPU without shader-f16.
    // Should a release refuse another dtype, or one on WASM, this fails and WASM_PREFERENCE is to be looked at again.
    const session = await readFile(path.join(root, 'src/models/session.js'), 'utf8');
    const refused = [...session.matchAll(/selectedDtype === DATA_TYPES\.(\w+)/g)].map((m) => m[1]);
    expect(refused).toEqual(['fp16']);
    const guard = session.slice(
      session.indexOf('selectedDtype === DATA_TYPES.fp16') - 300,
      session.indexOf('does not support fp16'),
    );
    expect(guard).toContain("selectedDevice === 'webgpu'");
    expect(session).not.toMatch(/selectedDevice === 'wasm'/);
  });
});

describe('parseRepoInput', () => {
  it('reads a repo id or a Hub URL, with the revision a URL names', () => {
    expect(parseRepoInput(' HuggingFaceTB/SmolLM2-135M-Instruct ')).toEqual({
      repo: 'HuggingFaceTB/SmolLM2-135M-Instruct',
      revision: null,
    });
    expect(parseRepoInput('https://huggingface.co/onnx-community/Qwen3-0.6B-ONNX')).toEqual({
      repo: 'onnx-community/Qwen3-0.6B-ONNX',
      revision: null,
    });
    expect(parseRepoInput('huggingface.co/onnx-community/Qwen3-0.6B-ONNX/tree/v1.0/onnx')).toEqual({
      repo: 'onnx-community/Qwen3-0.6B-ONNX',
      revision: 'v1.0',
    });
    expect(parseRepoInput('https://huggingface.co/models/a/b/blob/main/README.md')).toEqual({
      repo: 'a/b',
      revision: 'main',
    });
  });

  it('refuses other hosts, paths and names', () => {
    for (const text of [
      'https://example.com/a/b',
      'a/b/c',
      'just-a-name',
      '../x/y',
      'a/..',
      'https://huggingface.co/a',
    ]) {
      expect(parseRepoInput(text), text).toBeNull();
    }
  });
});
