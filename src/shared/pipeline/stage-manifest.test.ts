import { describe, expect, it } from 'vitest';
import { StageManifestSchema, stageFilePath } from './stage-manifest.ts';

const stage = (index: number, from: number, to: number, extra: Record<string, unknown> = {}) => ({
  index,
  layers: [from, to],
  file: `stage-${index}.onnx`,
  inputs: ['hidden_states'],
  outputs: ['hidden_states_out'],
  ...extra,
});
const manifest = (stages: unknown[], layers = 4) => ({ format: 'mesh-nanollm-stages', version: 1, layers, stages });

describe('stage manifests', () => {
  it('take contiguous stages from layer 0 to the last, with files beside the manifest', () => {
    const parsed = StageManifestSchema.parse(manifest([stage(0, 0, 2), stage(1, 2, 4, { data: 'stage-1.onnx_data' })]));
    expect(parsed.stages.map((s) => s.layers)).toEqual([
      [0, 2],
      [2, 4],
    ]);
  });

  it.each([
    ['a gap between stages', manifest([stage(0, 0, 1), stage(1, 2, 4)])],
    ['stages out of order', manifest([stage(1, 0, 2), stage(0, 2, 4)])],
    ['an empty stage', manifest([stage(0, 0, 0), stage(1, 0, 4)])],
    ['stages ending before the last layer', manifest([stage(0, 0, 2)])],
    ['a file in another folder', manifest([stage(0, 0, 4, { file: '../model.onnx' })])],
    ['external data in another folder', manifest([stage(0, 0, 4, { data: 'x/y.onnx_data' })])],
    ['no stages', manifest([])],
    ['another format', { ...manifest([stage(0, 0, 4)]), format: 'other' }],
  ])('refuse %s', (_, value) => {
    expect(StageManifestSchema.safeParse(value).success).toBe(false);
  });

  it('name files by their repo path, beside the manifest', () => {
    expect(stageFilePath('onnx/stages-3/stages.json', 'stage-0-of-3.onnx')).toBe('onnx/stages-3/stage-0-of-3.onnx');
    expect(stageFilePath('stages.json', 'model.onnx')).toBe('model.onnx');
    expect(() => stageFilePath('onnx/stages.json', '..')).toThrow();
  });
});
