import { describe, expect, it } from 'vitest';
import { PEER_PROTOCOL_VERSION } from '../peer-protocol.ts';
import { EngineGate } from './engine-gate.ts';
import { MeshNode } from './mesh-node.ts';
import type { Wire } from './peer-channel.ts';

const wire = (): Wire => ({
  send: () => {},
  isOpen: () => true,
  bufferedAmount: () => 0,
  onceBelow: (_threshold, listener) => listener(),
});

const frame = (message: object) => JSON.stringify({ v: PEER_PROTOCOL_VERSION, ...message });

describe('MeshNode', () => {
  it('keeps no entry for a peer that left, over 10,000 joins and leaves, even when its messages arrive late', () => {
    const engine = {
      loaded: () => null,
      generate: () => {
        throw new Error('no engine here');
      },
    };
    const node = new MeshNode(engine, new EngineGate(), { adapter: 'cpu' });
    node.setSharing(true);
    const capabilities = { backend: 'cpu', adapter: 'cpu', models: [], tokensPerSecond: 5, queue: 0, sharing: true };
    for (let i = 0; i < 10_000; i++) {
      const peerId = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const channel = node.addPeer(peerId, `guest ${i}`, wire(), `user-${i}`);
      const offer = () =>
        frame({
          type: 'job:offer',
          jobId: crypto.randomUUID(),
          model: { id: 'nano-shakespeare', sha256: 'a'.repeat(64) },
          messages: [{ role: 'user', content: 'hello' }],
          sampling: { temperature: 0, topP: 1, maxNewTokens: 4, seed: 1 },
          prefix: [],
          deadlineMs: 1000,
          purpose: 'answer',
        });
      channel.receive(frame({ type: 'hello', capabilities }));
      channel.receive(offer());
      node.removePeer(peerId);
      // Still in flight when it left: it must not bring the peer's entries back.
      channel.receive(offer());
    }
    expect(node.list()).toEqual([]);
    expect(node.server.footprint()).toEqual({ peers: 0 });
    expect(node.requester.footprint()).toEqual({ peers: 0, users: 0 });
    node.close();
  });
});
