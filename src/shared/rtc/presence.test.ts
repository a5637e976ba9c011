import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Capabilities, NO_CAPABILITIES } from '../socket-contract.ts';
import { PresencePublisher } from './presence.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('PresencePublisher', () => {
  it('sends a change at once, further ones at most once a second (the last always), and nothing unchanged', () => {
    let current: Capabilities = { ...NO_CAPABILITIES };
    const sent: Capabilities[] = [];
    const presence = new PresencePublisher(
      () => current,
      (capabilities) => sent.push(capabilities),
      1000,
    );
    expect(presence.forJoin()).toEqual(NO_CAPABILITIES);
    presence.publish();
    expect(sent).toEqual([]);
    current = { ...current, sharing: true };
    presence.publish();
    expect(sent).toHaveLength(1);
    current = { ...current, queue: 1 };
    presence.publish();
    current = { ...current, queue: 2 };
    presence.publish();
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    expect(sent.map((c) => c.queue)).toEqual([0, 2]);
    vi.advanceTimersByTime(5000);
    expect(sent).toHaveLength(2);
  });

  it('sends nothing pending after stop', () => {
    let current: Capabilities = { ...NO_CAPABILITIES, sharing: true };
    const sent: Capabilities[] = [];
    const presence = new PresencePublisher(
      () => current,
      (capabilities) => sent.push(capabilities),
      1000,
    );
    presence.publish();
    current = { ...current, queue: 3 };
    presence.publish();
    presence.stop();
    vi.advanceTimersByTime(2000);
    expect(sent).toHaveLength(1);
  });
});
