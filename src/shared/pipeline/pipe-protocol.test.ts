import { describe, expect, it } from 'vitest';
import { PeerMessageSchema, PeerCapabilitiesSchema } from '../peer-protocol.ts';

const jobId = '0b6f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4';
const peer = '1c7a2d3e-4f5a-4b6c-9d7e-8f90a1b2c3d4';
const open = {
  v: 1,
  type: 'pipe:open',
  jobId,
  job: { temperature: 0.9, topP: 0.95, seed: 4242 },
  model: 'pipeline-tiny',
  layers: [2, 4],
  from: peer,
  to: null,
};

describe('the pipeline messages of the peer protocol', () => {
  it('takes a job open naming its layers and neighbours, and the replies', () => {
    expect(PeerMessageSchema.safeParse(open).success).toBe(true);
    for (const reply of [
      { v: 1, type: 'pipe:opened', jobId },
      { v: 1, type: 'pipe:failed', jobId, code: 'CONTEXT_OVERFLOW', message: 'position 161 is past 160' },
      { v: 1, type: 'pipe:position', jobId, position: 40 },
      { v: 1, type: 'pipe:redirect', jobId, to: null, upTo: 40 },
      { v: 1, type: 'pipe:status', jobId },
    ])
      expect(PeerMessageSchema.safeParse(reply).success, reply.type).toBe(true);
  });

  it('refuses empty or reversed layer ranges, a job without its seed, unknown fields and codes', () => {
    const refused = [
      { ...open, layers: [2, 2] },
      { ...open, layers: [3, 1] },
      { ...open, layers: [0, 5000] },
      { ...open, job: { temperature: 0, topP: 1 } },
      { ...open, from: 'not-a-peer' },
      { ...open, extra: true },
      { v: 1, type: 'pipe:failed', jobId, code: 'WHATEVER', message: '' },
      { v: 1, type: 'pipe:position', jobId, position: -1 },
    ];
    for (const message of refused)
      expect(PeerMessageSchema.safeParse(message).success, JSON.stringify(message)).toBe(false);
  });

  it('takes a stage peer’s advertisement and refuses one past its caps', () => {
    const base = { backend: null, adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: true };
    const pipeline = {
      model: 'pipeline-tiny',
      layers: 4,
      holds: [[0, 2]],
      loadable: [[2, 4]],
      anyRange: true,
      layerMb: 0.4,
      freeMemoryMb: 1024,
      speed: null,
      version: 'a'.repeat(64),
      fingerprints: [{ layers: [2, 4], sha256: 'b'.repeat(64) }],
    };
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline }).success).toBe(true);
    // A stage peer says which model version its stages come from (docs/pipeline.md#stage-fingerprints).
    const { version: _, ...unversioned } = pipeline;
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: unversioned }).success).toBe(false);
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: { ...pipeline, version: 'v1' } }).success).toBe(false);
    expect(PeerCapabilitiesSchema.safeParse(base).success).toBe(true);
    const many = Array.from({ length: 17 }, (_, i) => [i, i + 1]);
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: { ...pipeline, holds: many } }).success).toBe(false);
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: { ...pipeline, layers: 0 } }).success).toBe(false);
  });
});
