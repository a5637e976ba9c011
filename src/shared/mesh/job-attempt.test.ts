import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type OutgoingPeerMessage, PEER_PROTOCOL_VERSION, type PeerMessage } from '../peer-protocol.ts';
import type { GeneratedToken } from './engine-gate.ts';
import { JobAttempt, type JobAttemptOptions } from './job-attempt.ts';

const v = PEER_PROTOCOL_VERSION;
const MODEL = { id: 'nano-shakespeare', sha256: 'a'.repeat(64) };

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function attempt(overrides: Partial<JobAttemptOptions> = {}) {
  const sent: OutgoingPeerMessage[] = [];
  const tokens: GeneratedToken[] = overrides.tokens ?? [];
  const seen: GeneratedToken[] = [];
  const run = new JobAttempt({
    attemptId: 'job-1',
    send: async (message) => {
      sent.push(message);
      return true;
    },
    job: {
      model: MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
      sampling: { temperature: 0, topP: 1, maxNewTokens: 8, seed: 1 },
    },
    tokens,
    deadlineMs: 60_000,
    purpose: 'answer',
    stallMs: 1000,
    acceptTimeoutMs: 500,
    onToken: (token) => seen.push(token),
    ...overrides,
  });
  const result = run.start();
  return { run, result, sent, tokens, seen };
}

const accept = (position = 0): PeerMessage => ({ v, type: 'job:accept', jobId: 'job-1', position });
const token = (index: number): PeerMessage => ({
  v,
  type: 'job:token',
  jobId: 'job-1',
  index,
  tokenId: 100 + index,
  text: `t${index}`,
});
const done: PeerMessage = {
  v,
  type: 'job:done',
  jobId: 'job-1',
  reason: 'eos',
  tokensIn: 3,
  tokensOut: 3,
  ttftMs: 5,
  tokensPerSecond: 40,
  backend: 'cpu',
};

describe('JobAttempt', () => {
  it('goes offered -> accepted -> settled, offering the tokens so far as the prefix and appending in order', async () => {
    const earlier = [{ index: 0, tokenId: 100, text: 't0' }];
    const { run, result, sent, tokens, seen } = attempt({ tokens: [...earlier] });
    await vi.advanceTimersByTimeAsync(0);
    expect(sent[0]).toMatchObject({ type: 'job:offer', jobId: 'job-1', prefix: [100], purpose: 'answer' });
    expect(run.state).toBe('offered');
    run.handle(accept());
    expect(run.state).toBe('accepted');
    run.handle(token(1));
    run.handle(token(2));
    run.handle(done);
    await expect(result).resolves.toMatchObject({ kind: 'done', done: { reason: 'eos' } });
    expect(run.state).toBe('settled');
    expect(tokens.map((t) => t.tokenId)).toEqual([100, 101, 102]);
    expect(seen.map((t) => t.index)).toEqual([1, 2]);
  });

  it('fails a peer that never answers the offer, without cancelling what it never took', async () => {
    const { result, sent } = attempt();
    await vi.advanceTimersByTimeAsync(500);
    await expect(result).resolves.toEqual({ kind: 'failed', reason: 'did not answer the offer', accepted: false });
    expect(sent.map((m) => m.type)).toEqual(['job:offer']);
  });

  it('fails and cancels a peer that stalls mid-answer, and gives a queued peer more time for its first token', async () => {
    const { run, result, sent } = attempt();
    run.handle(accept(2));
    // Third in its queue: three stall periods for the first token.
    await vi.advanceTimersByTimeAsync(2999);
    expect(run.state).toBe('accepted');
    run.handle(token(0));
    await vi.advanceTimersByTimeAsync(1000);
    await expect(result).resolves.toEqual({ kind: 'failed', reason: 'stalled mid-answer', accepted: true });
    expect(sent.at(-1)).toEqual({ type: 'job:cancel', jobId: 'job-1' });
  });

  it('refuses tokens out of order, tokens before an accept, and a done it cut short', async () => {
    const outOfOrder = attempt();
    outOfOrder.run.handle(accept());
    outOfOrder.run.handle(token(1));
    await expect(outOfOrder.result).resolves.toMatchObject({ kind: 'failed', reason: 'sent token 1 where 0 was due' });
    const early = attempt();
    early.run.handle(token(0));
    await expect(early.result).resolves.toMatchObject({
      kind: 'failed',
      reason: 'sent tokens for a job it had not accepted',
      accepted: false,
    });
    const cut = attempt();
    cut.run.handle(accept());
    cut.run.handle({ ...done, reason: 'interrupted' } as PeerMessage);
    await expect(cut.result).resolves.toMatchObject({ kind: 'failed', reason: 'stopped before the end of the answer' });
  });

  it('ends at the deadline however the peer paces its tokens', async () => {
    const { run, result } = attempt({ deadlineMs: 2500 });
    run.handle(accept());
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(900);
      run.handle(token(i));
    }
    await expect(result).resolves.toMatchObject({
      kind: 'failed',
      reason: 'did not finish within 2500 ms',
      accepted: true,
    });
  });

  it('tells the peer to stop on cancel, and ignores what arrives after it settled', async () => {
    const { run, result, sent, tokens } = attempt();
    run.handle(accept());
    run.cancel();
    run.handle(token(0));
    await expect(result).resolves.toEqual({ kind: 'cancelled' });
    expect(sent.at(-1)).toEqual({ type: 'job:cancel', jobId: 'job-1' });
    expect(tokens).toEqual([]);
  });

  it('fails at once when the offer cannot be sent', async () => {
    const { result } = attempt({ send: async () => false });
    await expect(result).resolves.toMatchObject({ kind: 'failed', reason: 'its channel is closed' });
  });
});
