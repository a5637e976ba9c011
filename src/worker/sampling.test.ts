import { describe, expect, it } from 'vitest';
import { sampleInPlace, uniform } from './sampling.ts';

describe('uniform', () => {
  it('is a function of seed and position only, spread over [0, 1)', () => {
    expect(uniform(7, 42)).toBe(uniform(7, 42));
    expect(uniform(7, 42)).not.toBe(uniform(8, 42));
    const draws = Array.from({ length: 10_000 }, (_, i) => uniform(123, i));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
    // Deciles hold about a tenth each.
    const deciles = new Array(10).fill(0);
    for (const d of draws) deciles[Math.floor(d * 10)]++;
    for (const count of deciles) expect(Math.abs(count - 1000)).toBeLessThan(150);
  });
});

describe('sampleInPlace', () => {
  it('draws tokens in proportion to softmax(logits / temperature) and leaves only the pick standing', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 6000; i++) {
      const logits = Float32Array.from([Math.log(3), Math.log(2), Math.log(1)]);
      const pick = sampleInPlace(logits, { temperature: 1, topP: 1 }, uniform(1, i));
      counts[pick]!++;
      expect(logits[pick]).toBe(0);
      expect(logits.filter((v) => v === -Infinity)).toHaveLength(2);
    }
    expect(counts[0]! / 6000).toBeCloseTo(0.5, 1);
    expect(counts[1]! / 6000).toBeCloseTo(1 / 3, 1);
    expect(counts[2]! / 6000).toBeCloseTo(1 / 6, 1);
  });

  it('keeps only the nucleus under top-p', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++)
      seen.add(sampleInPlace(Float32Array.from([5, 4.9, 0, -1]), { temperature: 1, topP: 0.9 }, uniform(2, i)));
    expect([...seen].sort()).toEqual([0, 1]);
  });
});
