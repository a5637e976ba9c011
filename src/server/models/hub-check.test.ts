import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRepoInput } from '../../shared/schemas/models.ts';
import { TEXT_GENERATION_MODEL_TYPES, addedModelId, chooseDtypes } from './hub-check.ts';

describe('the architectures models.add accepts', () => {
  it('are each a causal LM of transformers.js itself (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)', async () => {
    // The package's entry is dist/transformers.node.cjs; its sources sit beside dist/.
    const root = path.dirname(path.dirname(createRequire(import.meta.url).resolve('@huggingface/transformers')));
    const registry = await readFile(path.join(root, 'src/models/registry.js'), 'utf8');
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
    expect(chooseDtypes(['q4f16'])).toBeNull();
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
