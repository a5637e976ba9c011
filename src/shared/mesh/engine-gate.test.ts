import { describe, expect, it } from 'vitest';
import { EngineGate } from './engine-gate.ts';

describe('EngineGate', () => {
  it('runs one holder at a time, local work ahead of waiting mesh jobs, and preempts a running mesh job for local work', async () => {
    const gate = new EngineGate();
    const order: string[] = [];
    const preempted: string[] = [];
    const releaseMesh1 = await gate.acquire('mesh', () => preempted.push('mesh-1'));
    order.push('mesh-1');
    const mesh2 = gate
      .acquire('mesh', () => preempted.push('mesh-2'))
      .then((release) => {
        order.push('mesh-2');
        return release;
      });
    expect(gate.queued('mesh')).toBe(1);
    const local1 = gate.acquire('local').then((release) => {
      order.push('local-1');
      return release;
    });
    const local2 = gate.acquire('local').then((release) => {
      order.push('local-2');
      return release;
    });
    // The running mesh job was asked to stop for local work; the waiting one was not.
    expect(preempted).toEqual(['mesh-1', 'mesh-1']);
    releaseMesh1();
    (await local1)();
    (await local2)();
    (await mesh2)();
    expect(order).toEqual(['mesh-1', 'local-1', 'local-2', 'mesh-2']);
    expect(gate.busy()).toBe(false);
  });

  it('lets nobody slip in between a release and the next holder, and ignores a second release', async () => {
    const gate = new EngineGate();
    const first = await gate.acquire('mesh');
    const second = gate.acquire('mesh');
    first();
    first();
    // Asked after the release but before the waiting holder resumed: it waits its turn.
    let thirdIn = false;
    const third = gate.acquire('mesh').then((release) => {
      thirdIn = true;
      return release;
    });
    const releaseSecond = await second;
    await Promise.resolve();
    expect(thirdIn).toBe(false);
    releaseSecond();
    (await third)();
    expect(thirdIn).toBe(true);
  });
});
