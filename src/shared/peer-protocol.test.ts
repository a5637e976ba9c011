import { describe, expect, it } from 'vitest';
import { PEER_LIMITS, PeerMessageSchema, checkedTokenMessage } from './peer-protocol.ts';
import { ENGINE_LIMITS } from './engine-protocol.ts';

const JOB = '6d3f6a59-6b7e-4a0e-9a61-4f5e2d1c9b10';
const token = { v: 1, type: 'job:token', jobId: JOB, index: 3, tokenId: 42, text: 'thou' };

/** Each field set to values either side of the schema's bounds, and keys missing or added. */
function variants(): unknown[] {
  const values: Record<string, unknown[]> = {
    v: [1, 0, 2, '1', null],
    type: ['job:token', 'job:done', 'job:tokens', 1],
    jobId: [
      JOB,
      // Another valid id after the first, then the first again: the remembered id must not let a bad one through.
      'ffffffff-ffff-ffff-ffff-ffffffffffff',
      JOB.toUpperCase(),
      JOB.slice(1),
      `${JOB} `,
      'not-a-uuid',
      '6d3f6a59-6b7e-9a0e-9a61-4f5e2d1c9b10',
      '',
      7,
    ],
    index: [0, ENGINE_LIMITS.maxNewTokens, ENGINE_LIMITS.maxNewTokens + 1, -1, -0, 1.5, Number.NaN, '3', null],
    tokenId: [0, 0x7fff_ffff, 0x8000_0000, -1, 2.5, Infinity, 2 ** 53, '42', true],
    text: ['', 'x'.repeat(PEER_LIMITS.tokenChars), 'x'.repeat(PEER_LIMITS.tokenChars + 1), 'é\n"', 5, null, ['a']],
  };
  const list: unknown[] = [token, null, 'job:token', [token], 42];
  for (const [key, options] of Object.entries(values))
    for (const value of options) list.push({ ...token, [key]: value });
  for (const key of Object.keys(token)) {
    const { [key as keyof typeof token]: _gone, ...rest } = token;
    list.push(rest, { ...rest, [`${key}x`]: 1 });
  }
  list.push(
    { ...token, extra: 1 },
    { ...token, extra: undefined },
    JSON.parse(`{"__proto__":{},${JSON.stringify(token).slice(1)}`),
  );
  list.push({ v: 1, type: 'job:cancel', jobId: JOB }, { v: 1, type: 'ping', t: 1 });
  return list;
}

describe('checkedTokenMessage', () => {
  it("gives PeerMessageSchema's verdict and data on every job:token it passes, and passes every valid one", () => {
    let passed = 0;
    for (const value of variants()) {
      const fast = checkedTokenMessage(value);
      const schema = PeerMessageSchema.safeParse(value);
      if (fast) {
        passed++;
        expect(schema.success, JSON.stringify(value)).toBe(true);
        expect(fast).toEqual(schema.data);
      } else if (schema.success) {
        // Anything it leaves to the schema must be another type of message.
        expect(schema.data.type, JSON.stringify(value)).not.toBe('job:token');
      }
    }
    expect(passed).toBeGreaterThan(10);
  });
});
