import { describe, expect, it } from 'vitest';
import { type PlanPeer, planStages } from './plan.ts';

const peer = (peerId: string, freeMemoryMb: number, speed: number | null = null): PlanPeer => ({
  peerId,
  freeMemoryMb,
  speed,
});

describe('planStages', () => {
  it('puts the whole model on one peer when one can hold it, the fastest of those that can', () => {
    const plan = planStages(8, [peer('a', 1000, 5), peer('b', 1000, 9), peer('c', 100, 50)], { layerMb: 100 });
    expect(plan).toEqual([{ peerId: 'b', layers: [0, 8] }]);
  });

  it('splits across the fewest peers when nobody holds it alone, layers to the fastest first', () => {
    const plan = planStages(10, [peer('slow', 600, 1), peer('fast', 600, 4), peer('tiny', 100, 100)], {
      layerMb: 100,
    });
    expect(plan).toEqual([
      { peerId: 'fast', layers: [0, 6] },
      { peerId: 'slow', layers: [6, 10] },
    ]);
  });

  it('shares evenly between peers of equal (or unknown) speed', () => {
    expect(planStages(9, [peer('a', 500), peer('b', 500), peer('c', 500)], { layerMb: 100 })).toEqual([
      { peerId: 'a', layers: [0, 5] },
      { peerId: 'b', layers: [5, 9] },
    ]);
    expect(planStages(7, [peer('a', 300), peer('b', 300), peer('c', 300)], { layerMb: 100 })).toEqual([
      { peerId: 'a', layers: [0, 3] },
      { peerId: 'b', layers: [3, 5] },
      { peerId: 'c', layers: [5, 7] },
    ]);
  });

  it('skips a fast peer whose small memory would leave the rest unable to hold the model', () => {
    // Two peers must do it; taking the fast 2-layer peer would leave 5 places for 8 layers.
    const plan = planStages(10, [peer('fast', 200, 10), peer('big', 500, 1), peer('bigger', 600, 1)], {
      layerMb: 100,
    });
    expect(plan?.map((s) => s.peerId).sort()).toEqual(['big', 'bigger']);
    expect(plan?.at(-1)?.layers[1]).toBe(10);
  });

  it('keeps room for the embeddings and the LM head on every stage', () => {
    expect(planStages(4, [peer('a', 450), peer('b', 450)], { layerMb: 100, endsMb: 200 })).toEqual([
      { peerId: 'a', layers: [0, 2] },
      { peerId: 'b', layers: [2, 4] },
    ]);
    expect(planStages(4, [peer('a', 450), peer('b', 450)], { layerMb: 100, endsMb: 300 })).toBeNull();
  });

  it('is null when the room cannot hold the model, and refuses nonsense', () => {
    expect(planStages(10, [peer('a', 300), peer('b', 300)], { layerMb: 100 })).toBeNull();
    expect(planStages(10, [], { layerMb: 100 })).toBeNull();
    expect(() => planStages(0, [peer('a', 300)], { layerMb: 100 })).toThrow(/at least one layer/);
    expect(() => planStages(2, [peer('a', 300)], { layerMb: 0 })).toThrow(/layerMb/);
  });

  it('covers every layer exactly once, in order, with every stage holding one at least', () => {
    for (let layers = 1; layers <= 12; layers++) {
      const peers = [peer('a', 350, 3), peer('b', 720, 1), peer('c', 260, 3), peer('d', 990, null)];
      const plan = planStages(layers, peers, { layerMb: 90 });
      expect(plan).not.toBeNull();
      let at = 0;
      for (const stage of plan ?? []) {
        expect(stage.layers[0]).toBe(at);
        expect(stage.layers[1]).toBeGreaterThan(at);
        at = stage.layers[1];
      }
      expect(at).toBe(layers);
    }
  });
});
