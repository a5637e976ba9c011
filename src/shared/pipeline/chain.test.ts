import { describe, expect, it } from 'vitest';
import { type StageHostView, stageChain } from './chain.ts';
import { type LayerRange, stageFingerprint } from './pipe-protocol.ts';

const V1 = '1'.repeat(64);
const V2 = '2'.repeat(64);

/** A stage peer of a 4-layer model holding `holds`, its stages' fingerprints made from `version` and `files`. */
async function host(
  peerId: string,
  version: string,
  holds: LayerRange[],
  options: { files?: string; rttMs?: number; anyRange?: boolean; freeMemoryMb?: number } = {},
): Promise<StageHostView> {
  const fingerprints = await Promise.all(
    holds.map(async (layers) => ({
      layers,
      sha256: await stageFingerprint(version, layers, [(options.files ?? 'a').repeat(64)]),
    })),
  );
  return {
    peerId,
    rttMs: options.rttMs ?? 10,
    pipeline: {
      protocol: 2,
      model: 'pipeline-tiny',
      layers: 4,
      holds,
      loadable: [],
      anyRange: options.anyRange ?? false,
      layerMb: 1,
      freeMemoryMb: options.freeMemoryMb ?? 0,
      speed: null,
      version,
      fingerprints,
    },
  };
}

describe('stageChain', () => {
  it('chains stages of one model version, never a stage of another version with them', async () => {
    const first = await host('a', V1, [[0, 2]]);
    const other = await host('other', V2, [[2, 4]]);
    // Layers 2-4 exist only in another version of the model: no chain.
    expect(stageChain([first, other])).toBeNull();
    // The same layers of the same version: chained, and the other version's stage is still left out.
    const same = await host('same', V1, [[2, 4]], { rttMs: 500 });
    expect(stageChain([first, other, same])).toEqual([
      { peerId: 'a', layers: [0, 2] },
      { peerId: 'same', layers: [2, 4] },
    ]);
  });

  it('takes the version most peers hold when two versions could each make a chain', async () => {
    const hosts = [
      await host('v2-whole', V2, [[0, 4]]),
      await host('v1-a', V1, [[0, 2]]),
      await host('v1-b', V1, [[2, 4]]),
    ];
    expect(stageChain(hosts)?.map((s) => s.peerId)).toEqual(['v1-a', 'v1-b']);
  });

  it('leaves out a stage whose fingerprint disagrees with the one most peers give for the same layers', async () => {
    const first = await host('a', V1, [[0, 2]]);
    // The odd one out is the nearest, so it would be chosen were its files those of the others.
    const odd = await host('odd', V1, [[2, 4]], { files: 'f', rttMs: 1 });
    const right = [await host('b', V1, [[2, 4]], { rttMs: 50 }), await host('c', V1, [[2, 4]], { rttMs: 60 })];
    expect(stageChain([first, odd, ...right])?.map((s) => s.peerId)).toEqual(['a', 'b']);
    // Between two peers that disagree neither prevails: the nearest is taken, as before fingerprints.
    expect(stageChain([first, odd, right[0]!])?.map((s) => s.peerId)).toEqual(['a', 'odd']);
  });

  it('plans over peers that cut any range of the same version only', async () => {
    const cutters = [
      await host('x', V1, [], { anyRange: true, freeMemoryMb: 2 }),
      await host('y', V2, [], { anyRange: true, freeMemoryMb: 2 }),
      await host('z', V1, [], { anyRange: true, freeMemoryMb: 2 }),
    ];
    const chain = stageChain(cutters);
    expect(chain?.map((s) => s.layers)).toEqual([
      [0, 2],
      [2, 4],
    ]);
    expect(chain?.map((s) => s.peerId).sort()).toEqual(['x', 'z']);
  });
});
