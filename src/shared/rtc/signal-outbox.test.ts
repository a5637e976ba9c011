import { describe, expect, it } from 'vitest';
import type { Ack } from '../socket-contract.ts';
import type { LinkSignal } from './peer-link.ts';
import { SignalOutbox } from './signal-outbox.ts';

/** A relay whose answers the test gives, one at a time, in order. */
function manualRelay() {
  const calls: Array<{ to: string; data: LinkSignal; answer: (ack: Ack<null> | null) => void }> = [];
  const waiting: Array<() => void> = [];
  const relay = (to: string, data: LinkSignal) =>
    new Promise<Ack<null> | null>((answer) => {
      calls.push({ to, data: structuredClone(data), answer });
      waiting.splice(0).forEach((wake) => wake());
    });
  /** The `n`th call to the relay (from 1), once it has been made. */
  const call = async (n: number) => {
    while (calls.length < n) await new Promise<void>((resolve) => waiting.push(resolve));
    return calls[n - 1] as (typeof calls)[number];
  };
  return { relay, calls, call };
}

const description = (sdp: string): LinkSignal => ({ description: { type: 'offer', sdp } });
const candidates = (...names: string[]): LinkSignal => ({
  candidates: names.map((candidate) => ({ candidate, sdpMid: '0', sdpMLineIndex: 0 })),
});

describe('SignalOutbox', () => {
  it('sends one signal at a time per peer, each after the last was acknowledged, merging candidates that queue up', async () => {
    const { relay, calls, call } = manualRelay();
    const outbox = new SignalOutbox(relay);
    outbox.send('bea', description('offer-1'));
    const first = await call(1);
    outbox.send('bea', candidates('c1'));
    outbox.send('bea', candidates('c2'));
    outbox.send('bea', candidates('c3'));
    expect(calls).toHaveLength(1);
    first.answer({ ok: true, data: null });
    // Candidates that queued up behind the offer on its way go as one message.
    const second = await call(2);
    expect(second.data).toEqual(candidates('c1', 'c2', 'c3'));
    // One on its way is never added to: c4 waits for its own turn.
    outbox.send('bea', candidates('c4'));
    second.answer({ ok: true, data: null });
    const third = await call(3);
    expect(third.data).toEqual(candidates('c4'));
    third.answer({ ok: true, data: null });
    await new Promise((resolve) => setImmediate(resolve));
    expect(outbox.pending('bea')).toBe(0);
  });

  it('sends a rate-limited signal again after the wait the server names, and drops an unanswered one', async () => {
    const { relay, call } = manualRelay();
    const waits: number[] = [];
    const outbox = new SignalOutbox(relay, async (ms) => {
      waits.push(ms);
    });
    outbox.send('bea', description('offer-1'));
    outbox.send('bea', description('offer-2'));
    (await call(1)).answer({ ok: false, error: 'RATE_LIMITED', message: 'slow down', retryInMs: 250 });
    const again = await call(2);
    expect(again.data).toEqual(description('offer-1'));
    expect(waits).toEqual([250]);
    again.answer(null);
    expect((await call(3)).data).toEqual(description('offer-2'));
  });

  it('forgets what waits for a peer that left', async () => {
    const { relay, calls, call } = manualRelay();
    const outbox = new SignalOutbox(relay);
    outbox.send('bea', description('offer-1'));
    const first = await call(1);
    outbox.send('bea', candidates('c1'));
    outbox.forget('bea');
    expect(outbox.pending('bea')).toBe(0);
    first.answer({ ok: true, data: null });
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toHaveLength(1);
  });
});
