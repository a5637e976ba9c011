import { describe, expect, it } from 'vitest';
import type { EngineModel } from '../shared/engine-protocol.ts';
import { type GpuLike, onnxFile, planBackend } from './backend.ts';

const model: EngineModel = {
  id: 'smol',
  repo: 'org/smol',
  revision: 'main',
  dtype: { webgpu: 'q4f16', wasm: 'q4' },
  files: ['config.json', 'onnx/model_q4f16.onnx', 'onnx/model_q4.onnx'],
  contextLength: 2048,
};
const gpu = (features: string[] | null, fail = false): GpuLike => ({
  requestAdapter: async () => {
    if (fail) throw new Error('device lost');
    return features ? { features: new Set(features), info: { vendor: 'google', architecture: 'swiftshader' } } : null;
  },
});

describe('planBackend', () => {
  it('takes WebGPU with the f16 weights when the adapter has shader-f16', async () => {
    expect(await planBackend(model, 'auto', gpu(['shader-f16']), false)).toEqual({
      backend: 'webgpu',
      dtype: 'q4f16',
      reason: 'WebGPU on google swiftshader',
    });
  });

  it('takes q4 on WebGPU without shader-f16, and WASM when the model has no f16-free weights', async () => {
    expect(await planBackend(model, 'auto', gpu([]), false)).toMatchObject({
      backend: 'webgpu',
      dtype: 'q4',
      reason: expect.stringMatching(/without shader-f16: q4 instead of q4f16/),
    });
    const onlyF16 = {
      ...model,
      dtype: { webgpu: 'q4f16', wasm: 'q8' } as const,
      files: ['onnx/model_q4f16.onnx', 'onnx/model_quantized.onnx'],
    };
    expect(await planBackend(onlyF16, 'auto', gpu([]), false)).toMatchObject({
      backend: 'wasm',
      dtype: 'q8',
      reason: expect.stringMatching(/lacks shader-f16/),
    });
  });

  it('falls back to WASM with a reason when there is no WebGPU, no adapter, a failing adapter, or WASM is asked for', async () => {
    expect(await planBackend(model, 'auto', null, false)).toMatchObject({
      backend: 'wasm',
      dtype: 'q4',
      reason: expect.stringMatching(/no WebGPU/),
    });
    expect(await planBackend(model, 'auto', gpu(null), false)).toMatchObject({
      backend: 'wasm',
      reason: expect.stringMatching(/No WebGPU adapter/),
    });
    expect(await planBackend(model, 'webgpu', gpu([], true), false)).toMatchObject({
      backend: 'wasm',
      reason: expect.stringMatching(/device lost/),
    });
    expect(await planBackend(model, 'wasm', gpu(['shader-f16']), false)).toMatchObject({
      backend: 'wasm',
      reason: 'WASM was asked for',
    });
  });

  it('runs on the CPU through onnxruntime-node in Node', async () => {
    expect(await planBackend(model, 'webgpu', gpu(['shader-f16']), true)).toMatchObject({
      backend: 'cpu',
      dtype: 'q4',
    });
  });

  it('names ONNX files the way transformers.js does', () => {
    expect([onnxFile('fp32'), onnxFile('q8'), onnxFile('q4f16')]).toEqual([
      'onnx/model.onnx',
      'onnx/model_quantized.onnx',
      'onnx/model_q4f16.onnx',
    ]);
  });
});
