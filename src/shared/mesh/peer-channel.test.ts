import { describe, expect, it } from 'vitest';
import { PEER_LIMITS, type PeerMessage } from '../peer-protocol.ts';
import { PeerChannel, type Wire } from './peer-channel.ts';

/** A wire whose buffer only drains when the test says so. */
function slowWire() {
  const sent: string[] = [];
  let buffered = 0;
  const waiting: { threshold: number; listener: () => void }[] = [];
  const wire: Wire = {
    send: (text) => {
      sent.push(text);
      buffered += text.length;
    },
    isOpen: () => true,
    bufferedAmount: () => buffered,
    onceBelow: (threshold, listener) => void waiting.push({ threshold, listener }),
  };
  return {
    wire,
    sent,
    drain() {
      buffered = 0;
      waiting.splice(0).forEach(({ listener }) => listener());
    },
  };
}

const JOB = '6d3f6a59-6b7e-4a0e-9a61-4f5e2d1c9b10';

describe('PeerChannel', () => {
  it('waits while the channel buffer is full and sends in order once it drains', async () => {
    const { wire, sent, drain } = slowWire();
    const channel = new PeerChannel(wire);
    const text = 'x'.repeat(2000);
    // Enough messages to fill the buffer past its high mark (well under the queue's own cap).
    const count = Math.ceil(PEER_LIMITS.bufferedHighBytes / 500) + 10;
    const sends = Array.from({ length: count }, (_, index) =>
      channel.send({
        type: 'job:error',
        jobId: JOB,
        code: 'GENERATION_FAILED',
        message: `${index} ${text}`.slice(0, 500),
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sent.length).toBeLessThan(count);
    drain();
    await Promise.all(sends);
    expect(sent.length).toBe(count);
    expect(sent.map((frame) => Number.parseInt((JSON.parse(frame) as { message: string }).message, 10))).toEqual(
      Array.from({ length: count }, (_, i) => i),
    );
  });

  it('sends a large message in chunks that the other side puts back together, interleaved with small ones', async () => {
    const { wire, sent } = slowWire();
    const channel = new PeerChannel(wire);
    const content = 'word '.repeat(20_000);
    await channel.send({
      type: 'hello',
      capabilities: { backend: 'cpu', adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: true },
    });
    await channel.send({
      type: 'job:offer',
      jobId: JOB,
      model: { id: 'm', sha256: 'a'.repeat(64) },
      messages: [
        { role: 'user', content: content.slice(0, 30_000) },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: content.slice(0, 30_000) },
      ],
      sampling: { temperature: 0, topP: 1, maxNewTokens: 8, seed: 1 },
      prefix: [],
      deadlineMs: 1000,
      purpose: 'answer',
    });
    expect(sent.length).toBeGreaterThan(4);
    expect(sent.every((frame) => frame.length <= PEER_LIMITS.frameChars)).toBe(true);
    const received: PeerMessage[] = [];
    const other = new PeerChannel(slowWire().wire);
    other.onMessage = (message) => received.push(message);
    for (const frame of sent) other.receive(frame);
    expect(received.map((m) => m.type)).toEqual(['hello', 'job:offer']);
    expect(received[1]?.type === 'job:offer' && received[1].messages[0]?.content.length).toBe(30_000);
    expect(other.droppedTotal()).toBe(0);
  });

  it('keeps every frame within the cap when the text is full of characters JSON escapes', async () => {
    const { wire, sent } = slowWire();
    const channel = new PeerChannel(wire);
    // Quotes, backslashes, newlines and control characters: up to six characters each once escaped.
    const content = 'He said "yes"\\ and\nthen \u0001 left. '.repeat(800);
    const messages = [
      { role: 'user' as const, content },
      { role: 'assistant' as const, content: 'Quite.' },
      { role: 'user' as const, content },
    ];
    await channel.send({
      type: 'job:offer',
      jobId: JOB,
      model: { id: 'm', sha256: 'a'.repeat(64) },
      messages,
      sampling: { temperature: 0, topP: 1, maxNewTokens: 8, seed: 1 },
      prefix: [],
      deadlineMs: 1000,
      purpose: 'answer',
    });
    expect(sent.every((frame) => frame.length <= PEER_LIMITS.frameChars)).toBe(true);
    const received: PeerMessage[] = [];
    const other = new PeerChannel(slowWire().wire);
    other.onMessage = (message) => received.push(message);
    for (const frame of sent) other.receive(frame);
    expect(other.dropped).toMatchObject({ oversize: 0, chunk: 0, invalid: 0 });
    expect(received[0]?.type === 'job:offer' && received[0].messages).toEqual(messages);
  });

  it('drops what it cannot send to a peer that stops reading, instead of queueing without end', async () => {
    const { wire, drain } = slowWire();
    const channel = new PeerChannel(wire);
    const text = 'y'.repeat(200);
    const results = await Promise.race([
      Promise.all(
        Array.from({ length: PEER_LIMITS.pendingMessages + 10_000 }, (_, i) =>
          channel.send({ type: 'job:token', jobId: JOB, index: i % 4096, tokenId: i, text }),
        ),
      ),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 50)),
    ]);
    expect(results).toBeNull();
    expect(channel.droppedOutgoing).toBeGreaterThanOrEqual(10_000);
    drain();
  });

  it('refuses to send a message past the cap instead of cutting it', async () => {
    const channel = new PeerChannel(slowWire().wire);
    await expect(
      channel.send({
        type: 'job:error',
        jobId: JOB,
        code: 'GENERATION_FAILED',
        message: 'x'.repeat(PEER_LIMITS.messageChars),
      }),
    ).rejects.toThrow(/at most/);
  });
});
