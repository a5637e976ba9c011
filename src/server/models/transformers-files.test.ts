import { describe, expect, it } from 'vitest';
import { DownloadError } from './download-types.ts';
import {
  ModelConfigSchema,
  availableDtypes,
  externalDataNames,
  transformersFiles,
  weightFiles,
} from './transformers-files.ts';

const BASE = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'];

describe('transformersFiles', () => {
  it('names weights by dtype suffix (q8 is model_quantized.onnx, fp32 has none) and adds the config and tokenizer files', () => {
    const tree = new Set([...BASE, 'onnx/model.onnx', 'onnx/model_quantized.onnx', 'onnx/model_q4f16.onnx']);
    expect(
      transformersFiles({
        config: {},
        tree,
        targets: [
          { device: 'webgpu', dtype: 'q4f16' },
          { device: 'wasm', dtype: 'q8' },
        ],
      }),
    ).toEqual([...BASE, 'onnx/model_q4f16.onnx', 'onnx/model_quantized.onnx']);
  });

  it('leaves out generation_config.json and the tokenizer when the repo has none (transformers.js carries on without)', () => {
    const tree = new Set(['config.json', 'onnx/model_q4.onnx']);
    expect(transformersFiles({ config: {}, tree, targets: [{ device: 'wasm', dtype: 'q4' }] })).toEqual([
      'config.json',
      'onnx/model_q4.onnx',
    ]);
  });

  it('reads use_external_data_format as a count, a boolean or per file, with the device overlay winning', () => {
    expect(externalDataNames('model_q4.onnx', 3)).toEqual([
      'model_q4.onnx_data',
      'model_q4.onnx_data_1',
      'model_q4.onnx_data_2',
    ]);
    const config = (js: unknown) => ModelConfigSchema.parse({ 'transformers.js_config': js });
    expect(weightFiles(config({ use_external_data_format: true }), 'wasm', 'fp32')).toEqual([
      'onnx/model.onnx',
      'onnx/model.onnx_data',
    ]);
    expect(weightFiles(config({ use_external_data_format: { 'model_fp16.onnx': 2 } }), 'webgpu', 'q4')).toEqual([
      'onnx/model_q4.onnx',
    ]);
    expect(weightFiles(config({ use_external_data_format: { model: 2 } }), 'webgpu', 'q4')).toHaveLength(3);
    const overlaid = config({
      use_external_data_format: true,
      device_config: { webgpu: { use_external_data_format: false } },
    });
    expect(weightFiles(overlaid, 'webgpu', 'fp16')).toEqual(['onnx/model_fp16.onnx']);
    expect(weightFiles(overlaid, 'wasm', 'fp16')).toEqual(['onnx/model_fp16.onnx', 'onnx/model_fp16.onnx_data']);
  });

  it('refuses a missing file, naming the dtypes the repo has, and a chunk count transformers.js would refuse', () => {
    const tree = new Set([...BASE, 'onnx/model.onnx', 'onnx/model_fp16.onnx']);
    expect(availableDtypes(tree)).toEqual(['fp32', 'fp16']);
    const missing = () => transformersFiles({ config: {}, tree, targets: [{ device: 'wasm', dtype: 'q4' }] });
    expect(missing).toThrow(DownloadError);
    expect(missing).toThrow('The repo has no onnx/model_q4.onnx (it has fp32, fp16)');
    expect(() =>
      weightFiles(
        ModelConfigSchema.parse({ 'transformers.js_config': { use_external_data_format: 101 } }),
        'wasm',
        'q4',
      ),
    ).toThrow(/101 external data chunks/);
  });
});
