import { describe, expect, it } from 'vitest';
import { FRAME_LIMITS, FrameError, decodeFrame, encodeFrame, frameRows } from './frame.ts';

const JOB = '6f1c1d2e-0a4b-4c8d-9e0f-1a2b3c4d5e6f';

describe('pipeline frames', () => {
  it('round-trips hidden states, token ids and a sampled token with their header fields', () => {
    const hidden = Float32Array.from({ length: 3 * 8 }, (_, i) => i / 7 - 1.5);
    const bytes = encodeFrame({ kind: 'hidden', jobId: JOB, position: 17, sample: true, width: 8, data: hidden });
    // Header, the job id padded to 4 bytes, then exactly the payload's bytes.
    expect(bytes.byteLength).toBe(Math.ceil((17 + JOB.length) / 4) * 4 + hidden.byteLength);
    const frame = decodeFrame(bytes);
    expect(frame).toMatchObject({ kind: 'hidden', jobId: JOB, position: 17, sample: true, width: 8 });
    expect(frameRows(frame)).toBe(3);
    expect(Array.from(frame.data)).toEqual(Array.from(hidden));

    const ids = Int32Array.of(5, 0, 258, 2 ** 31 - 1);
    const tokens = decodeFrame(
      encodeFrame({ kind: 'tokens', jobId: 'j', position: 0, sample: false, width: 1, data: ids }),
    );
    expect(tokens).toMatchObject({ kind: 'tokens', jobId: 'j', position: 0, sample: false, width: 1 });
    expect(Array.from(tokens.data)).toEqual(Array.from(ids));
    const sampled = decodeFrame(
      encodeFrame({ kind: 'sampled', jobId: JOB, position: 4095, sample: false, width: 1, data: Int32Array.of(42) }),
    );
    expect(sampled).toMatchObject({ kind: 'sampled', position: 4095 });
    expect(Array.from(sampled.data)).toEqual([42]);
  });

  it('reads a frame at an unaligned offset of a larger buffer (a pooled Node Buffer) by copying its payload', () => {
    const data = Float32Array.of(1.25, -2.5, 3.75, 0);
    const bytes = encodeFrame({ kind: 'hidden', jobId: JOB, position: 3, sample: false, width: 2, data });
    const pool = new Uint8Array(bytes.byteLength + 3);
    pool.set(bytes, 3);
    const frame = decodeFrame(pool.subarray(3));
    expect(Array.from(frame.data)).toEqual(Array.from(data));
    // The aligned case is a view, not a copy.
    const aligned = decodeFrame(bytes);
    expect(aligned.data.buffer).toBe(bytes.buffer);
  });

  it('refuses frames that break the format or its limits before allocating for them', () => {
    const good = encodeFrame({
      kind: 'hidden',
      jobId: JOB,
      position: 0,
      sample: false,
      width: 4,
      data: new Float32Array(8),
    });
    const broken = (at: number, value: number) => {
      const copy = good.slice();
      copy[at] = value;
      return copy;
    };
    expect(() => decodeFrame(good.subarray(0, 10))).toThrow(FrameError);
    expect(() => decodeFrame(broken(0, 2))).toThrow(/version 2/);
    expect(() => decodeFrame(broken(1, 9))).toThrow(/unknown frame kind/);
    expect(() => decodeFrame(broken(2, 2))).toThrow(/carries float32/);
    expect(() => decodeFrame(broken(3, 4))).toThrow(/flags/);
    expect(decodeFrame(broken(3, 3))).toMatchObject({ sample: true, rebuild: true });
    expect(() => decodeFrame(good.subarray(0, good.length - 4))).toThrow(/must be/);
    // A row count claiming more than the limit is refused from the header alone.
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(8, FRAME_LIMITS.rows + 1, true);
    expect(() => decodeFrame(huge)).toThrow(/1 to 4096 rows/);
    const wideTokens = encodeFrame({
      kind: 'tokens',
      jobId: 'j',
      position: 0,
      sample: false,
      width: 1,
      data: new Int32Array(4),
    });
    new DataView(wideTokens.buffer).setUint32(12, 2, true);
    expect(() => decodeFrame(wideTokens)).toThrow(/rows 2 wide/);
    expect(() =>
      encodeFrame({
        kind: 'hidden',
        jobId: 'x'.repeat(65),
        position: 0,
        sample: false,
        width: 1,
        data: new Float32Array(1),
      }),
    ).toThrow(/1 to 64 bytes/);
    expect(() =>
      encodeFrame({ kind: 'hidden', jobId: JOB, position: 0, sample: false, width: 3, data: new Float32Array(4) }),
    ).toThrow(/whole rows/);
  });
});
