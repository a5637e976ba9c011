// The weight formats of the export-shaped test models (scripts/tiny-model/quantize.ts) on their edge cases, which
// the end-to-end comparisons with ONNX Runtime (tests/export-shapes.test.ts) never reach with random weights:
// float16 rounding ties, subnormals and overflow; 4-bit blocks with a partial last block and an all-zero block.
import { describe, expect, it } from 'vitest';
import { dequantizeQ4, fromHalfBits, quantizeQ4, roundHalf, toHalfBits } from '../scripts/tiny-model/quantize.ts';

describe('float16 conversion', () => {
  it('rounds to nearest even, keeps subnormals and overflows to infinity as a float16 cast does', () => {
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(-2)).toBe(0xc000);
    expect(toHalfBits(65504)).toBe(0x7bff); // the largest float16
    expect(toHalfBits(65520)).toBe(0x7c00); // halfway to the next step: rounds up, to infinity
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00); // a tie: to the even mantissa
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // a tie: to the even mantissa, upwards
    expect(toHalfBits(2 ** -24)).toBe(0x0001); // the smallest subnormal
    expect(toHalfBits(2 ** -25)).toBe(0x0000); // a tie with zero: to even
    expect(toHalfBits(3 * 2 ** -25)).toBe(0x0002);
    expect(toHalfBits(-0)).toBe(0x8000);
    expect(toHalfBits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(fromHalfBits(toHalfBits(Number.NaN))).toBeNaN();
  });

  it('round-trips every finite float16 value exactly', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue; // infinities and NaNs
      if (toHalfBits(fromHalfBits(h)) !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
    expect(Array.from(roundHalf(Float32Array.of(0.1, 1 / 3)))).toEqual([0.0999755859375, 0.333251953125]);
  });
});

describe('4-bit block quantisation (MatMulNBits layout)', () => {
  it('dequantises within half a step of each weight, a partial last block and a zero block included', () => {
    const k = 40; // one block of 32 and a partial one of 8
    const n = 3;
    const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5)));
    for (let i = 0; i < 32; i++) w[i * n + 2] = 0; // column 2's first block all zero
    const q = quantizeQ4(w, k, n);
    expect(q.blocks).toBe(2);
    expect(q.packed.length).toBe(n * 2 * 16);
    const back = dequantizeQ4(q, k, n);
    for (let i = 0; i < k; i++) {
      for (let col = 0; col < n; col++) {
        const scale = q.scales[col * q.blocks + Math.floor(i / 32)] ?? 0;
        expect(Math.abs((back[i * n + col] ?? 0) - (w[i * n + col] ?? 0))).toBeLessThanOrEqual(scale / 2 + 1e-6);
      }
    }
    for (let i = 0; i < 32; i++) expect(back[i * n + 2]).toBe(0);
    // The largest weight of a block maps to ±7 steps: the scale is max|w| / 7.
    const first = Math.max(...Array.from({ length: 32 }, (_, i) => Math.abs(w[i * n] ?? 0)));
    expect(q.scales[0]).toBeCloseTo(first / 7, 6);
  });
});
