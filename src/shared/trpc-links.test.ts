import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { retryAfterMs } from './trpc-links.ts';

const refusal = (status: number, retryAfter: string | null) =>
  new TRPCClientError('refused', {
    meta: {
      response: new Response(null, { status, headers: retryAfter === null ? {} : { 'retry-after': retryAfter } }),
    },
  });

describe('retryAfterMs', () => {
  it("reads a 429's Retry-After, and a 503's only where the caller allows it (queries)", () => {
    expect(retryAfterMs(refusal(429, '1'))).toBe(1000);
    expect(retryAfterMs(refusal(503, '1'))).toBeNull();
    expect(retryAfterMs(refusal(503, '2'), [429, 503])).toBe(2000);
  });

  it('is null for other statuses, and for a refusal that names no wait', () => {
    expect(retryAfterMs(refusal(500, '1'), [429, 503])).toBeNull();
    expect(retryAfterMs(refusal(429, null))).toBeNull();
    expect(retryAfterMs(refusal(429, 'soon'))).toBeNull();
    expect(retryAfterMs(new TRPCClientError('no response'))).toBeNull();
  });
});
