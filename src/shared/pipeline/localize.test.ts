import { describe, expect, it } from 'vitest';
import { blameMembers, spotCheck } from '../mesh/spot-check.ts';
import { type StandIn, localizeMismatch, standInsFor } from './localize.ts';
import type { LayerRange, PipelineCapability } from './pipe-protocol.ts';
import type { StagePlacement } from './chain.ts';

const GOOD = [5, 6, 7, 8];
const BAD = [5, 6, 9, 9];
const CHAIN: StagePlacement[] = [
  { peerId: 'ada', layers: [0, 2] },
  { peerId: 'bea', layers: [2, 3] },
  { peerId: 'cy', layers: [3, 4] },
];

/**
 * A room where `liars`' stages turn the answer into BAD, with stand-ins `spares[i]` for stage i; a liar in
 * `framing` answers honestly in every re-run (it knows the job again) to have a neighbour blamed.
 */
function room(liars: string[], spares: Record<number, string[]>, framing: string[] = []) {
  const runs: string[][] = [];
  return {
    runs,
    input: (maxRuns = 4) => ({
      stages: CHAIN,
      served: BAD,
      corrected: GOOD,
      standIns: (index: number): StandIn[] => (spares[index] ?? []).map((peerId) => ({ peerId, userId: peerId })),
      rerun: async (stages: StagePlacement[]) => {
        runs.push(stages.map((s) => s.peerId));
        if (stages.some((s) => s.peerId === 'gone')) return null;
        const lying = stages.filter((s) => liars.includes(s.peerId) && !framing.includes(s.peerId)).length;
        return lying === 0 ? GOOD : lying === 1 ? BAD : [1, 1, 1, 1];
      },
      maxRuns,
    }),
  };
}

describe('localizeMismatch', () => {
  it('finds the one stage whose swap gives the checkers’ tokens, swapping one stage at a time in layer order', async () => {
    const r = room(['bea'], { 0: ['x'], 1: ['y'], 2: ['z'] });
    const blame = await localizeMismatch(r.input());
    expect(blame).toMatchObject({ scope: 'stage', stages: [CHAIN[1]], standIns: ['y'], runs: 3 });
    expect(r.runs).toEqual([
      ['x', 'bea', 'cy'],
      ['ada', 'y', 'cy'],
      // The suspect alone, every other stage swapped: it gives the served tokens again.
      ['x', 'bea', 'z'],
    ]);
  });

  it('needs no confirming run on two stages: the other stage’s swap ran the suspect alone', async () => {
    const r = room(['bea'], { 0: ['x'], 1: ['y'] });
    const twoStages = { ...r.input(), stages: CHAIN.slice(0, 2) };
    expect(await localizeMismatch(twoStages)).toMatchObject({ scope: 'stage', stages: [CHAIN[1]], runs: 2 });
  });

  it('does not blame an honest neighbour when the liar answers honestly in the re-runs: the chain is blamed', async () => {
    const r = room(['cy'], { 0: ['x'], 1: ['y'], 2: ['z'] }, ['cy']);
    const blame = await localizeMismatch(r.input());
    expect(blame.scope).toBe('chain');
    expect(blame.why).toMatch(/swapping layers 0–2 gave the checkers' tokens, but with every other stage swapped/);
    expect(r.runs).toEqual([
      ['x', 'bea', 'cy'],
      ['ada', 'y', 'z'],
    ]);
  });

  it('tries the next stand-in when one could not run the job', async () => {
    const r = room(['cy'], { 0: ['x'], 1: ['y'], 2: ['gone', 'z'] });
    expect(await localizeMismatch(r.input(5))).toMatchObject({ scope: 'stage', stages: [CHAIN[2]], runs: 5 });
    expect(r.runs.at(-1)).toEqual(['x', 'y', 'cy']);
  });

  it('blames the whole chain, saying why, when nobody can stand in for a stage', async () => {
    const r = room(['cy'], { 0: ['x'], 1: ['y'] });
    const blame = await localizeMismatch(r.input());
    expect(blame).toEqual({ scope: 'chain', runs: 2, why: 'no other peer could stand in for layers 3–4' });
  });

  it('stops at its bound of re-runs and blames the chain', async () => {
    const r = room(['cy'], { 0: ['x'], 1: ['y'], 2: ['z'] });
    const blame = await localizeMismatch(r.input(2));
    expect(blame).toEqual({ scope: 'chain', runs: 2, why: 'no swap showed the stage that disagreed within 2 re-runs' });
    expect(r.runs).toHaveLength(2);
  });

  it('blames the chain when two stages lie (no single swap fixes the answer)', async () => {
    const r = room(['ada', 'cy'], { 0: ['x'], 1: ['y'], 2: ['z'] });
    const blame = await localizeMismatch(r.input());
    expect(blame).toMatchObject({ scope: 'chain', runs: 3 });
    expect(blame.why).toMatch(/neither the served nor the checkers'/);
  });
});

describe('standInsFor', () => {
  const capability = (over: Partial<PipelineCapability> = {}): PipelineCapability => ({
    protocol: 2,
    model: 'm',
    layers: 4,
    holds: [],
    loadable: [],
    anyRange: false,
    layerMb: 1,
    freeMemoryMb: 100,
    speed: null,
    version: 'a'.repeat(64),
    fingerprints: [],
    ...over,
  });
  const layers: LayerRange = [2, 4];
  const print = (c: string) => [{ layers, sha256: c.repeat(64) }];
  const served = capability({ holds: [layers], fingerprints: print('b') });
  const host = (peerId: string, over: Partial<PipelineCapability>) => ({
    peerId,
    userId: `user-${peerId}`,
    pipeline: capability(over),
  });

  it('offers peers of the same version and stage fingerprint that hold, load or can cut the layers, holders first', () => {
    const hosts = [
      host('cutter', { anyRange: true }),
      host('holder', { holds: [layers], fingerprints: print('b') }),
      host('loader', { loadable: [layers] }),
      host('other-version', { holds: [layers], version: 'c'.repeat(64) }),
      host('other-print', { holds: [layers], fingerprints: print('d') }),
      host('other-layers', { holds: [[2, 3]] }),
      host('served-user', { holds: [layers] }),
      host('in-chain', { holds: [layers] }),
    ];
    const chain = [
      { peerId: 'in-chain', layers: [0, 2] as LayerRange },
      { peerId: 'liar', layers },
    ];
    const found = standInsFor(hosts, served, chain[1]!, chain, new Set(['user-served-user']));
    expect(found.map((s) => s.peerId)).toEqual(['holder', 'cutter', 'loader']);
    expect(standInsFor(hosts, undefined, chain[1]!, chain, new Set())).toEqual([]);
  });
});

describe('blameMembers', () => {
  const tokens = (ids: number[]) => ids.map((tokenId, index) => ({ index, tokenId, text: '' }));
  const chain = {
    peerId: 'ada',
    userId: 'u-ada',
    members: [
      { peerId: 'ada', userId: 'u-ada' },
      { peerId: 'bea', userId: 'u-bea' },
    ],
  };
  const caught = () =>
    spotCheck({
      jobId: 'job-1',
      tokens: tokens(BAD),
      madeBy: BAD.map(() => chain),
      candidates: (skip) =>
        [
          { peerId: 'x', userId: 'u-x' },
          { peerId: 'y', userId: 'u-y' },
        ].filter((p) => !skip.has(p.userId)),
      rerun: async () => tokens(GOOD),
    });

  it('narrows a chain caught whole to the stage peer shown to disagree', async () => {
    const verdict = blameMembers(await caught(), { culprits: ['bea'], runs: 2, why: 'swapping it fixed it' }, 'job-1');
    expect(verdict.check).toMatchObject({
      result: 'MISMATCH',
      excluded: ['bea'],
      corrected: { tokenIds: GOOD },
      blame: { scope: 'stage', runs: 2, why: 'swapping it fixed it' },
    });
    expect(verdict.exclusions.map((e) => e.peer.userId)).toEqual(['u-bea']);
    expect(verdict.mismatch).toEqual({ peerId: 'bea', userId: 'u-bea' });
  });

  it('keeps the whole chain excluded when no stage could be singled out, and says why', async () => {
    const verdict = blameMembers(await caught(), { culprits: null, runs: 0, why: 'no stand-in' }, 'job-1');
    expect(verdict.check).toMatchObject({ excluded: ['ada', 'bea'], blame: { scope: 'chain', why: 'no stand-in' } });
    expect(verdict.exclusions[0]?.why).toMatch(/the whole chain: no stand-in$/);
  });
});
