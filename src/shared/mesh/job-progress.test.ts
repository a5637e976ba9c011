// One job's state across attempts (job-progress.ts) and the sendable check, as plain values: no peers, no network.
import { describe, expect, it } from 'vitest';
import { ENGINE_LIMITS } from '../engine-protocol.ts';
import type { PeerMessage } from '../peer-protocol.ts';
import { JobProgress, checkSendable } from './job-progress.ts';
import { MeshJobError, type PeerView } from './mesh-job.ts';

const MODEL = { id: 'nano', sha256: 'a'.repeat(64) };
const peer = (name: string): PeerView => ({
  peerId: `peer-${name}`,
  userId: `user-${name}`,
  name,
  capabilities: { backend: 'cpu', adapter: 'cpu', models: [MODEL], tokensPerSecond: null, queue: 0, sharing: true },
  rttMs: 10,
  send: async () => true,
});
const done = (over: Partial<Extract<PeerMessage, { type: 'job:done' }>> = {}) =>
  ({
    v: 1,
    type: 'job:done',
    jobId: 'j',
    reason: 'eos',
    backend: 'webgpu',
    tokensIn: 7,
    tokensOut: 3,
    ttftMs: 40,
    tokensPerSecond: 25,
    ...over,
  }) as Extract<PeerMessage, { type: 'job:done' }>;

describe('JobProgress', () => {
  it('builds the outcome from the tokens, who made them and the last peer’s done', () => {
    const ada = peer('ada');
    const bob = peer('bob');
    const progress = new JobProgress('job-1', 1000);
    const add = (by: PeerView, text: string, at: number) => {
      progress.tokens.push({ index: progress.tokens.length, tokenId: progress.tokens.length + 10, text });
      progress.madeToken(by, at);
    };
    add(ada, 'To', 1250);
    add(ada, ' be', 1300);
    expect(progress.failed(ada, { kind: 'failed', reason: 'left', accepted: true })).toBe(true);
    add(bob, ' or', 1400);
    expect(progress.outcome(done())).toEqual({
      jobId: 'job-1',
      text: 'To be or',
      tokenIds: [10, 11, 12],
      reason: 'eos',
      servedBy: [ada, bob],
      failovers: 1,
      tokensIn: 7,
      ttftMs: 250,
      servedTtftMs: 40,
      tokensPerSecond: 25,
      backend: 'webgpu',
      check: null,
    });
    expect(progress.madeBy.map((p) => p.name)).toEqual(['ada', 'ada', 'bob']);
  });

  it('calls an outcome with no done interrupted, and one with no token has no time to first token', () => {
    const progress = new JobProgress('job-2', 0);
    expect(progress.outcome(null)).toMatchObject({ reason: 'interrupted', text: '', ttftMs: 0, backend: '' });
  });

  it('counts a failover only for a peer that had accepted; a busy refusal is no fault and no failover', () => {
    const progress = new JobProgress('job-3', 0);
    expect(progress.failed(peer('a'), { kind: 'failed', reason: 'busy', accepted: false, refusal: 'QUEUE_FULL' })).toBe(
      false,
    );
    expect(progress.failed(peer('b'), { kind: 'failed', reason: 'no reply', accepted: false })).toBe(true);
    expect(progress.failoverCount).toBe(0);
  });

  it('says BUSY when every peer asked only refused for now, NO_PEER otherwise, naming why each passed', () => {
    const busy = new JobProgress('job-4', 0);
    expect(busy.noPeer('nano')).toMatchObject({ code: 'NO_PEER', message: 'No peer in this room shares nano' });
    busy.failed(peer('a'), {
      kind: 'failed',
      reason: 'refused (TOO_MANY_JOBS)',
      accepted: false,
      refusal: 'TOO_MANY_JOBS',
    });
    expect(busy.noPeer('nano')).toMatchObject({
      code: 'BUSY',
      message: 'Every peer in this room that shares nano is busy (a: refused (TOO_MANY_JOBS))',
    });
    busy.tokens.push({ index: 0, tokenId: 1, text: 'x' });
    busy.failed(peer('b'), { kind: 'failed', reason: 'stalled mid-answer', accepted: true });
    expect(busy.noPeer('nano')).toMatchObject({
      code: 'NO_PEER',
      message:
        'No peer in this room shares nano to finish this answer (a: refused (TOO_MANY_JOBS); b: stalled mid-answer)',
    });
  });
});

describe('checkSendable', () => {
  const request = (content: string) => ({
    model: MODEL,
    messages: [{ role: 'user' as const, content }],
    sampling: { temperature: 0, topP: 1, maxNewTokens: 8, seed: 1 },
    onToken: () => {},
  });

  it('lets a job within the caps through and refuses one past them as INVALID, naming the field', () => {
    expect(() => checkSendable(crypto.randomUUID(), request('hello'), 60_000)).not.toThrow();
    let caught: unknown;
    try {
      checkSendable(crypto.randomUUID(), request('x'.repeat(ENGINE_LIMITS.messageChars + 1)), 60_000);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(MeshJobError);
    expect(caught).toMatchObject({
      code: 'INVALID',
      message: expect.stringMatching(/^This job cannot be sent: messages/),
    });
  });
});
