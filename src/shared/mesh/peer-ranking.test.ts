import { describe, expect, it } from 'vitest';
import type { PeerCapabilities } from '../peer-protocol.ts';
import { type RankedPeer, type RankingFacts, measuredSpeed, rankPeers } from './peer-ranking.ts';

const MODEL = { id: 'nano-shakespeare', sha256: 'a'.repeat(64) };

function peer(peerId: string, claims: number | null, extra: Partial<PeerCapabilities> = {}): RankedPeer {
  return {
    peerId,
    userId: `user-${peerId}`,
    rttMs: 10,
    capabilities: {
      backend: 'cpu',
      adapter: 'cpu',
      models: [MODEL],
      tokensPerSecond: claims,
      queue: 0,
      sharing: true,
      ...extra,
    },
  };
}

function facts(
  measured: Record<string, number> = {},
  failures: Record<string, number> = {},
  excluded: string[] = [],
): RankingFacts {
  return {
    measuredTokensPerSecond: (peerId) => measured[peerId] ?? null,
    recentFailures: (peerId) => failures[peerId] ?? 0,
    isExcluded: (userId) => excluded.includes(userId),
  };
}

const ids = (peers: RankedPeer[]) => peers.map((p) => p.peerId);

describe('rankPeers', () => {
  it('ranks a peer by the speed measured here once there is one, not by the speed it claims', () => {
    const liar = peer('liar', 10_000);
    const honest = peer('honest', 40);
    expect(ids(rankPeers([honest, liar], MODEL, facts()))).toEqual(['liar', 'honest']);
    expect(ids(rankPeers([honest, liar], MODEL, facts({ liar: 5 })))).toEqual(['honest', 'liar']);
    // A measurement counts over a claim both ways: a modest claim measured fast goes first.
    expect(ids(rankPeers([liar, honest], MODEL, facts({ liar: 5, honest: 300 })))).toEqual(['honest', 'liar']);
  });

  it('leaves out peers that do not share, lack the exact model, are excluded or skipped, and halves a score per recent failure', () => {
    const peers = [
      peer('a', 100),
      peer('b', 100, { sharing: false }),
      peer('c', 100, { models: [] }),
      peer('d', 100),
      peer('e', 100),
      peer('f', 60),
    ];
    expect(ids(rankPeers(peers, MODEL, facts({}, { a: 1 }, ['user-d']), new Set(['e'])))).toEqual(['f', 'a']);
  });
});

describe('measuredSpeed', () => {
  it('times tokens from the offer, so tokens held back and sent in one burst do not look fast', () => {
    // 100 tokens, all sent in the last few milliseconds of a 10 s job: 10 tokens/s, not thousands.
    expect(measuredSpeed(100, 0, 10_000)).toBe(10);
    expect(measuredSpeed(0, 0, 10_000)).toBeNull();
  });
});
