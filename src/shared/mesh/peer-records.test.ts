// What the requester remembers of peers and users (peer-records.ts), on a clock the test moves: no peers, no network.
import { describe, expect, it } from 'vitest';
import { FAILURES_KEPT, FAILURE_MEMORY_MS, PeerRecords } from './peer-records.ts';

const records = (present = new Set(['a', 'b'])) => {
  const clock = { now: 0 };
  return {
    clock,
    present,
    memory: new PeerRecords(
      (peerId) => present.has(peerId),
      () => clock.now,
    ),
  };
};

describe('PeerRecords', () => {
  it('forgets a failure after FAILURE_MEMORY_MS and keeps at most FAILURES_KEPT', () => {
    const { clock, memory } = records();
    memory.failed('a');
    clock.now = FAILURE_MEMORY_MS - 1;
    expect(memory.recentFailures('a')).toBe(1);
    clock.now = FAILURE_MEMORY_MS;
    expect(memory.recentFailures('a')).toBe(0);
    for (let i = 0; i < FAILURES_KEPT + 5; i++) memory.failed('a');
    expect(memory.recentFailures('a')).toBe(FAILURES_KEPT);
  });

  it('moves the measured speed halfway to each new sample; an unmeasured job changes nothing', () => {
    const { memory } = records();
    expect(memory.measuredTokensPerSecond('a')).toBeNull();
    memory.measured('a', 100);
    memory.measured('a', 20);
    memory.measured('a', null);
    expect(memory.measuredTokensPerSecond('a')).toBe(60);
  });

  it('keeps nothing for a peer not in the room (a result that came after it left), and drops what it had', () => {
    const { present, memory } = records();
    memory.failed('gone');
    memory.measured('gone', 50);
    memory.servedAnswer(['gone', 'a', 'a']);
    expect(memory.servedCount('a')).toBe(1);
    expect(memory.footprint()).toEqual({ peers: 1, users: 0 });
    present.delete('a');
    memory.forget('a');
    expect(memory.footprint()).toEqual({ peers: 0, users: 0 });
  });

  it('excludes a user with why, and its record of checks that held up counts for nothing after', () => {
    const { memory } = records();
    memory.matched(['user-x', 'user-x', 'user-y']);
    expect(memory.matchesOf('user-x')).toBe(1);
    memory.exclude('user-x', 'did not match');
    expect(memory.isExcluded('user-x')).toBe(true);
    expect(memory.exclusion('user-x')).toBe('did not match');
    expect(memory.matchesOf('user-x')).toBe(0);
    expect(memory.isExcluded('user-y')).toBe(false);
    expect(memory.footprint().users).toBe(2);
  });
});
