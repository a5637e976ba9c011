import { describe, expect, it } from 'vitest';
import { decodeFrame } from './frame.ts';
import { FrameLog } from './frame-log.ts';
import { memoryWirePair } from './frame-wire.ts';

const hidden = (position: number, rows: number, sample = false) => ({
  kind: 'hidden' as const,
  jobId: 'j',
  position,
  sample,
  width: 2,
  data: new Float32Array(rows * 2).fill(position),
});

describe('the frame log', () => {
  it('replays rebuild-only what the next stage holds and the rest as it was sent, in order', async () => {
    const log = new FrameLog();
    log.record(hidden(0, 5));
    log.record(hidden(5, 3, true));
    log.record(hidden(8, 1, true));
    log.record(hidden(9, 1, true));
    const [a, b] = memoryWirePair();
    const got: string[] = [];
    b.onFrame((bytes) => {
      const f = decodeFrame(bytes);
      got.push(`${f.position}${f.rebuild ? ' rebuild' : ''}${f.sample ? ' sample' : ''}`);
    });
    await log.replay('j', a, 9);
    await new Promise<void>((resolve) => a.onceBelow(0, resolve));
    expect(got).toEqual(['0 rebuild', '5 rebuild', '8 rebuild', '9 sample']);
  });

  it('refuses a replay point inside a frame, and a job it did not keep', async () => {
    const log = new FrameLog();
    log.record(hidden(0, 5));
    const [a] = memoryWirePair();
    await expect(log.replay('j', a, 3)).rejects.toThrow(/straddles position 3/);
    await expect(log.replay('other', a, 0)).rejects.toThrow(/cannot be rebuilt/);
    log.drop('j');
    await expect(log.replay('j', a, 0)).rejects.toThrow(/cannot be rebuilt/);
  });
});
