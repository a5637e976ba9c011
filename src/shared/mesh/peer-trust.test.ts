import { describe, expect, it } from 'vitest';
import { BoundedMap } from './bounded-map.ts';
import { PeerTrust, TRUST_RECORDS, checkRate } from './peer-trust.ts';

const policy = { spotCheckRate: 0.1, newcomerCheckRate: 1, trustAfterMatches: 3 };

describe('checkRate', () => {
  it('checks every answer from a user with fewer matching checks than the threshold, then only at the chosen rate', () => {
    expect(checkRate(policy, [0])).toBe(1);
    expect(checkRate(policy, [2])).toBe(1);
    expect(checkRate(policy, [3])).toBe(0.1);
  });

  it('checks an answer at the newcomer rate when any one of the users who made it is new', () => {
    expect(checkRate(policy, [12, 0])).toBe(1);
    expect(checkRate(policy, [12, 5])).toBe(0.1);
  });

  it('never goes below the chosen rate, and respects a chosen rate of never', () => {
    expect(checkRate({ ...policy, spotCheckRate: 1, newcomerCheckRate: 0.5 }, [0])).toBe(1);
    expect(checkRate({ ...policy, spotCheckRate: 0 }, [0])).toBe(0);
  });
});

describe('PeerTrust', () => {
  it('counts matching checks per user, once per check however many of its peers made the answer', () => {
    const trust = new PeerTrust();
    trust.matched(['ann', 'ann', 'bob']);
    trust.matched(['ann']);
    expect(trust.matchesOf('ann')).toBe(2);
    expect(trust.matchesOf('bob')).toBe(1);
    expect(trust.matchesOf('cy')).toBe(0);
    trust.forget('ann');
    expect(trust.matchesOf('ann')).toBe(0);
  });

  it('stays bounded under 10,000 new identities, and a user it forgets is new again, never trusted', () => {
    const trust = new PeerTrust();
    for (let i = 0; i < 3; i++) trust.matched(['veteran']);
    expect(checkRate(policy, [trust.matchesOf('veteran')])).toBe(0.1);
    for (let i = 0; i < 10_000; i++) trust.matched([`guest-${i}`]);
    expect(trust.size).toBe(TRUST_RECORDS);
    expect(trust.matchesOf('veteran')).toBe(0);
    expect(checkRate(policy, [trust.matchesOf('veteran')])).toBe(1);
    expect(trust.matchesOf('guest-9999')).toBe(1);
  });
});

describe('BoundedMap', () => {
  it('drops the least recently set entry past its limit', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2).set('a', 3).set('c', 4);
    expect([...map.entries()]).toEqual([
      ['a', 3],
      ['c', 4],
    ]);
  });
});
