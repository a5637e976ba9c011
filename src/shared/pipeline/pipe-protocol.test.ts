import { describe, expect, it } from 'vitest';
import { PeerMessageSchema, PeerCapabilitiesSchema } from '../peer-protocol.ts';
import { CapabilitiesSchema } from '../socket-contract.ts';
import { EngineGate } from '../mesh/engine-gate.ts';
import { MeshNode } from '../mesh/mesh-node.ts';
import { PIPE_PROTOCOL_VERSION } from './pipe-protocol.ts';

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
      { v: 1, type: 'pipe:position', jobId, position: 40, runningMs: 2500 },
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
      { v: 1, type: 'pipe:position', jobId, position: 4, runningMs: -1 },
    ];
    for (const message of refused)
      expect(PeerMessageSchema.safeParse(message).success, JSON.stringify(message)).toBe(false);
  });

  it('takes a stage peer’s advertisement and refuses one past its caps', () => {
    const base = { backend: null, adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: true };
    const pipeline = {
      protocol: PIPE_PROTOCOL_VERSION,
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
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: { ...pipeline, protocol: '2' } }).success).toBe(false);
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: { ...pipeline, version: 'v1' } }).success).toBe(false);
    expect(PeerCapabilitiesSchema.safeParse(base).success).toBe(true);
    const many = Array.from({ length: 17 }, (_, i) => [i, i + 1]);
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: { ...pipeline, holds: many } }).success).toBe(false);
    expect(PeerCapabilitiesSchema.safeParse({ ...base, pipeline: { ...pipeline, layers: 0 } }).success).toBe(false);
  });

  it('sets aside the stages of a peer of another pipe protocol, naming both versions, and keeps the peer', () => {
    expect(PIPE_PROTOCOL_VERSION).toBe(2);
    const base = { backend: null, adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: true };
    // What a stage peer from before stage fingerprints advertised: no protocol, no version, no fingerprints.
    const old = {
      model: 'pipeline-tiny',
      layers: 4,
      holds: [[0, 2]],
      loadable: [],
      anyRange: false,
      layerMb: 0.4,
      freeMemoryMb: 1024,
      speed: null,
    };
    const parsed = PeerCapabilitiesSchema.safeParse({ ...base, pipeline: old });
    expect(parsed.success).toBe(true);
    expect(parsed.data?.pipeline).toBeUndefined();
    expect(parsed.data?.pipelineRefused).toBe(
      'pipe protocol mismatch: its stages speak pipe protocol 1 (from before stage fingerprints), this peer speaks ' +
        'pipe protocol 2; update the older peer to chain them',
    );
    // A later version is named the same way, whatever else its capability holds; so is the server's presence.
    const later = { ...old, protocol: 3, somethingNew: [1, 2] };
    const { adapter: _, ...presence } = base;
    for (const seen of [
      PeerCapabilitiesSchema.safeParse({ ...base, pipeline: later }),
      CapabilitiesSchema.safeParse({ ...presence, pipeline: later }),
    ]) {
      expect(seen.data?.pipelineRefused).toMatch(/speak pipe protocol 3, this peer speaks pipe protocol 2;/);
      expect(seen.data?.pipeline).toBeUndefined();
    }
    // A whole hello from such a peer is taken (it can still serve whole models), not dropped.
    expect(PeerMessageSchema.safeParse({ v: 1, type: 'hello', capabilities: { ...base, pipeline: old } }).success).toBe(
      true,
    );
  });

  it('a node hearing an old stage peer keeps it, chains none of its stages, and says why when asked for the model', async () => {
    const node = new MeshNode(
      {
        loaded: () => null,
        generate: () => {
          throw new Error('no engine here');
        },
      },
      new EngineGate(),
      { adapter: 'cpu' },
    );
    const wire = {
      send: () => {},
      isOpen: () => true,
      bufferedAmount: () => 0,
      onceBelow: (_: number, f: () => void) => f(),
    };
    const channel = node.addPeer(peer, 'Old', wire);
    const pipeline = { model: 'pipeline-tiny', layers: 4, holds: [[0, 4]], loadable: [], anyRange: false, layerMb: 1 };
    channel.receive(
      JSON.stringify({
        v: 1,
        type: 'hello',
        capabilities: {
          ...{ backend: null, adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: true },
          pipeline: { ...pipeline, freeMemoryMb: 64, speed: null },
        },
      }),
    );
    expect(channel.droppedTotal()).toBe(0);
    expect(node.peer(peer)?.capabilities?.pipelineRefused).toMatch(/pipe protocol 1 .* pipe protocol 2/);
    const asked = node.pipelines.generate({
      model: 'pipeline-tiny',
      job: { temperature: 0, topP: 1, seed: 1 },
      prompt: [1, 2, 3],
      maxNewTokens: 2,
      eos: new Set(),
    });
    await expect(asked.next()).rejects.toMatchObject({
      code: 'NO_PEER',
      message: expect.stringMatching(/Old's stages are set aside: pipe protocol mismatch: .*protocol 1 .*protocol 2/),
    });
    node.close();
  });
});
