import { describe, expect, it } from 'vitest';
import { stalledStage } from './stall.ts';

describe('stalledStage', () => {
  // [queued into stage 0, stage 0, stage 1, stage 2, sampled]
  it('names no stage when none has anything to do', () => {
    expect(stalledStage([45, 45, 45, 45, 45])).toBe(-1);
    expect(stalledStage([0, 0, 0, 0, 0])).toBe(-1);
  });

  it('names the first stage whose input is ahead of its cache, the first stage too', () => {
    expect(stalledStage([46, 45, 45, 45, 45])).toBe(0);
    expect(stalledStage([46, 46, 45, 45, 45])).toBe(1);
    // A prefill under way: every stage behind the one before; the first with work is named.
    expect(stalledStage([40, 25, 20, 15, 0])).toBe(0);
  });

  it('names a last stage that ran the step but whose token did not come back', () => {
    expect(stalledStage([46, 46, 46, 46, 45])).toBe(2);
    expect(stalledStage([46, 46, 45])).toBe(0);
  });

  it('names the first stage that did not answer before any other', () => {
    expect(stalledStage([46, 46, null, 45, 45])).toBe(1);
    expect(stalledStage([46, 45, 45, null, 45])).toBe(2);
  });
});
