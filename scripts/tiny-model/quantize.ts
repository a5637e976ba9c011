// Weight formats of real exports, and the same rounding for the reference forward pass: float16 (IEEE half,
// round to nearest even) and ONNX Runtime's 4-bit block quantisation (com.microsoft MatMulNBits, as in
// transformers.js' q4 files).

const view = new DataView(new ArrayBuffer(4));

/** IEEE 754 half from a float32, rounding to nearest even (what a cast to float16 does). */
export function toHalfBits(value: number): number {
  view.setFloat32(0, value);
  const bits = view.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (rest > midpoint || (rest === midpoint && half & 1) ? half + 1 : half);
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches infinity at the top).
  return sign | (rest > 0x1000 || (rest === 0x1000 && half & 1) ? half + 1 : half);
}

export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export function toHalf(values: Float32Array): Uint16Array {
  return Uint16Array.from(values, toHalfBits);
}

/** The float32 values a float16 round trip leaves. */
export function roundHalf(values: Float32Array): Float32Array {
  return values.map((value) => fromHalfBits(toHalfBits(value)));
}

/** transformers.js' q4 files use blocks of 32 along the input dimension. */
export const Q4_BLOCK = 32;

export interface Q4Weight {
  /** [N, blocks, block / 2] bytes, two 4-bit values a byte, the lower index in the low nibble. */
  packed: Uint8Array;
  /** [N * blocks] float32 scales. */
  scales: Float32Array;
  blocks: number;
}

/**
 * Symmetric 4-bit quantisation of a row-major [K, N] matrix (x @ W) into MatMulNBits' layout, which stores the
 * transpose: for each output n and block of 32 inputs, q = round(w / scale) + 8 in 0..15, scale = max|w| / 7.
 * No zero_points input: MatMulNBits then takes 8 for every block.
 */
export function quantizeQ4(w: Float32Array, k: number, n: number, block = Q4_BLOCK): Q4Weight {
  const blocks = Math.ceil(k / block);
  const packed = new Uint8Array(n * blocks * (block / 2));
  const scales = new Float32Array(n * blocks);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < blocks; b++) {
      let max = 0;
      for (let i = b * block; i < Math.min(k, (b + 1) * block); i++) max = Math.max(max, Math.abs(w[i * n + col] ?? 0));
      const scale = Math.fround(max / 7) || 1;
      scales[col * blocks + b] = scale;
      for (let j = 0; j < block; j++) {
        const i = b * block + j;
        const q = i < k ? Math.min(15, Math.max(0, Math.round((w[i * n + col] ?? 0) / scale) + 8)) : 8;
        const at = (col * blocks + b) * (block / 2) + (j >> 1);
        packed[at] = (packed[at] ?? 0) | (j & 1 ? q << 4 : q);
      }
    }
  }
  return { packed, scales, blocks };
}

/** The row-major [K, N] float32 matrix MatMulNBits computes with: (q - 8) * scale. */
export function dequantizeQ4({ packed, scales, blocks }: Q4Weight, k: number, n: number, block = Q4_BLOCK) {
  const w = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let i = 0; i < k; i++) {
      const b = Math.floor(i / block);
      const j = i % block;
      const byte = packed[(col * blocks + b) * (block / 2) + (j >> 1)] ?? 0;
      const q = j & 1 ? byte >> 4 : byte & 0xf;
      w[i * n + col] = (q - 8) * (scales[col * blocks + b] ?? 0);
    }
  }
  return w;
}

export interface Q8Weight {
  /** The [K, N] matrix in int8, row-major as the float32 one. */
  values: Int8Array;
  scale: number;
}

/**
 * Symmetric 8-bit quantisation of a whole matrix with one scale, as onnxruntime's dynamic quantisation writes the
 * weights of transformers.js' q8 files (`model_quantized.onnx`): q = round(w / scale), scale = max|w| / 127.
 */
export function quantizeQ8(w: Float32Array): Q8Weight {
  let max = 0;
  for (const value of w) max = Math.max(max, Math.abs(value));
  const scale = Math.fround(max / 127) || 1;
  return { values: Int8Array.from(w, (value) => Math.max(-127, Math.min(127, Math.round(value / scale)))), scale };
}
