import { describe, expect, it } from 'vitest';
import { pickToken } from '../shared/pipeline/job.ts';
import { forbidEnd } from '../shared/sampling.ts';
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

describe('forbidEnd', () => {
  it('takes the end tokens out of the running unless nothing else is left', () => {
    const logits = Float32Array.from([1, 9, 2, 8]);
    forbidEnd(logits, new Set([1, 3, 99]));
    expect(Array.from(logits)).toEqual([1, -Infinity, 2, -Infinity]);
    // The only token standing ends the answer: it stays (an answer that must end can).
    const alone = Float32Array.from([-Infinity, 5, -Infinity]);
    forbidEnd(alone, [1]);
    expect(Array.from(alone)).toEqual([-Infinity, 5, -Infinity]);
  });
});

describe('pickToken', () => {
  const job = { temperature: 0, topP: 1, seed: 3, answerStart: 10, endTokens: [2] };
  it('never ends the answer at its first position, greedy or sampled, and leaves later positions alone', () => {
    expect(pickToken(Float32Array.from([0, 1, 9]), job, 10)).toBe(1);
    expect(pickToken(Float32Array.from([0, 1, 9]), job, 11)).toBe(2);
    for (let seed = 0; seed < 200; seed++)
      expect(pickToken(Float32Array.from([0, 1, 9]), { ...job, temperature: 1, seed }, 10)).not.toBe(2);
    // A job from a requester that names no end tokens is drawn as before.
    expect(pickToken(Float32Array.from([0, 1, 9]), { temperature: 0, topP: 1, seed: 3 }, 10)).toBe(2);
  });
});
