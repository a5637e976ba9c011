import { describe, expect, it } from 'vitest';
import { memoryWirePair, sendFrame } from './frame-wire.ts';

describe('the in-memory frame wire', () => {
  it('delivers frames in order on a later task, counting them as buffered until then', async () => {
    const [a, b] = memoryWirePair();
    const got: number[] = [];
    b.onFrame((frame) => got.push(frame[0] ?? -1));
    a.send(Uint8Array.of(1, 0, 0));
    a.send(Uint8Array.of(2));
    expect(a.bufferedAmount()).toBe(4);
    expect(got).toEqual([]);
    await new Promise<void>((resolve) => a.onceBelow(0, resolve));
    expect(got).toEqual([1, 2]);
    expect(a.stats).toEqual({ frames: 2, bytes: 4 });
  });

  it('holds a sender above the high-water mark until the wire drains to half of it', async () => {
    const [a, b] = memoryWirePair();
    let received = 0;
    b.onFrame((frame) => (received += frame.byteLength));
    a.send(new Uint8Array(1000));
    const order: string[] = [];
    const sent = sendFrame(a, new Uint8Array(10), 500).then(() => order.push(`sent after ${received} bytes arrived`));
    expect(a.bufferedAmount()).toBe(1000);
    await sent;
    expect(order).toEqual(['sent after 1000 bytes arrived']);
  });

  it('releases a waiting sender with an error when the wire closes', async () => {
    const [a] = memoryWirePair({ latencyMs: 1000 });
    a.send(new Uint8Array(100));
    const sent = sendFrame(a, new Uint8Array(1), 10);
    a.close();
    await expect(sent).rejects.toThrow(/closed/);
  });
});
