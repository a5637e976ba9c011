import { describe, expect, it } from 'vitest';
import { SlotQueue, SlotWaitTimeout } from './slot-queue.ts';

describe('SlotQueue', () => {
  it('grants slots in arrival order as they free up, and more at once when the capacity grows', async () => {
    let capacity = 2;
    const queue = new SlotQueue(() => capacity);
    const order: number[] = [];
    const releases = await Promise.all([queue.acquire({ waitMs: 1000 }), queue.acquire({ waitMs: 1000 })]);
    const waiting = [3, 4, 5].map((n) =>
      queue.acquire({ waitMs: 1000 }).then((release) => {
        order.push(n);
        return release;
      }),
    );
    expect(queue).toMatchObject({ running: 2, waiting: 3 });
    releases[0]?.();
    releases[0]?.(); // a second release of the same slot frees nothing more
    await waiting[0];
    expect(order).toEqual([3]);
    expect(queue).toMatchObject({ running: 2, waiting: 2 });
    capacity = 4;
    queue.pump();
    await Promise.all(waiting);
    expect(order).toEqual([3, 4, 5]);
    expect(queue).toMatchObject({ running: 4, waiting: 0 });
  });

  it('puts a job back at the head when asked, gives up after its wait, and leaves when its signal aborts', async () => {
    const queue = new SlotQueue(() => 1);
    const held = await queue.acquire({ waitMs: 1000 });
    const late = queue.acquire({ waitMs: 20 });
    await expect(late).rejects.toBeInstanceOf(SlotWaitTimeout);
    const controller = new AbortController();
    const aborted = queue.acquire({ waitMs: 1000, signal: controller.signal });
    const second = queue.acquire({ waitMs: 1000 });
    const first = queue.acquire({ waitMs: 1000, first: true });
    controller.abort(new Error('client left'));
    await expect(aborted).rejects.toThrow('client left');
    expect(queue.waiting).toBe(2);
    held();
    const granted = await Promise.race([first.then(() => 'first'), second.then(() => 'second')]);
    expect(granted).toBe('first');
    expect(queue).toMatchObject({ running: 1, waiting: 1 });
    queue.close(new Error('closing'));
    await expect(second).rejects.toThrow('closing');
  });

  it('after a job is refused as busy, grants no more than were running then until the moment passes', async () => {
    const queue = new SlotQueue(() => 2);
    const [a, b] = await Promise.all([queue.acquire({ waitMs: 1000 }), queue.acquire({ waitMs: 1000 })]);
    const granted: string[] = [];
    const next = (name: string) =>
      queue.acquire({ waitMs: 1000 }).then((release) => {
        granted.push(name);
        return release;
      });
    const c = next('c');
    const d = next('d');
    // `b`'s peers were busy: one runs now (`a`), so one runs until 50 ms pass, though the capacity says two.
    b?.(50);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(granted).toEqual([]);
    // A place given back is taken by the next in line, within the ceiling.
    a?.();
    await c;
    expect(granted).toEqual(['c']);
    expect(queue).toMatchObject({ running: 1, waiting: 1 });
    await d;
    expect(granted).toEqual(['c', 'd']);
    expect(queue).toMatchObject({ running: 2, waiting: 0 });
  });
});
