import { describe, expect, it } from 'vitest';
import { IP_FACTOR, LoginThrottle, addressKey } from './login-throttle.ts';

const policy = { maxFailures: 2, lockoutMs: 60_000 };

/** A failed attempt at `username` from `ip` at `now`; throws if the throttle refused it. */
function fail(throttle: LoginThrottle, username: string, ip: string, now: number): void {
  const attempt = throttle.begin(username, ip, now);
  if (!attempt.ok) throw new Error(`refused: ${attempt.message}`);
  throttle.fail(attempt.ticket, now);
}

describe('the login throttle', () => {
  it('counts an IPv6 /64 as one address, and an IPv4-mapped address as its IPv4 one', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe(addressKey('2001:db8:1:2:bbbb::2'));
    expect(addressKey('2001:db8:1:2::1')).not.toBe(addressKey('2001:db8:1:3::1'));
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7');

    const throttle = new LoginThrottle(policy);
    fail(throttle, 'ada', '2001:db8:1:2::1', 0);
    fail(throttle, 'ada', '2001:db8:1:2::2', 0);
    expect(throttle.begin('ada', '2001:db8:1:2::99', 0)).toMatchObject({ ok: false, retryAfterMs: 1000 });
    expect(throttle.begin('ada', '2001:db8:1:3::1', 0)).toMatchObject({ ok: true });
  });

  it('keeps its memory bounded however many usernames and addresses fail', () => {
    const throttle = new LoginThrottle(policy);
    for (let i = 0; i < 150_000; i++)
      fail(throttle, `user${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 0);
    expect(throttle.size.pairs).toBeLessThanOrEqual(100_000);
    expect(throttle.size.addresses).toBeLessThanOrEqual(50_000);
  });

  it('forgets failures a day after the last one', () => {
    const throttle = new LoginThrottle(policy);
    for (let i = 0; i < policy.maxFailures * IP_FACTOR; i++) fail(throttle, `user${i}`, '192.0.2.1', 0);
    expect(throttle.begin('grace', '192.0.2.1', 999).ok).toBe(false);
    // A day later the count starts from nothing: one more failure brings no wait (a 21st would bring 2 s).
    fail(throttle, 'grace', '192.0.2.1', 24 * 3_600_000);
    expect(throttle.begin('grace', '192.0.2.1', 24 * 3_600_000).ok).toBe(true);
  });

  it('gives back an attempt whose check could not run, so an outage never counts as guessing', () => {
    const throttle = new LoginThrottle(policy);
    for (let i = 0; i < 5; i++) {
      const attempt = throttle.begin('ada', '192.0.2.4', 0);
      if (!attempt.ok) throw new Error('refused');
      throttle.release(attempt.ticket, 0);
    }
    fail(throttle, 'ada', '192.0.2.4', 0);
    expect(throttle.begin('ada', '192.0.2.4', 0).ok).toBe(true);
  });

  it('never waits longer than the cap when the clock steps back', () => {
    const throttle = new LoginThrottle(policy);
    fail(throttle, 'ada', '192.0.2.2', 10 * 3_600_000);
    // One failure is below the limit: no wait at all, whatever the clock says.
    expect(throttle.begin('ada', '192.0.2.2', 0).ok).toBe(true);
    for (let i = 0; i < 20; i++) fail(throttle, 'ada', '192.0.2.3', 10 * 3_600_000 + i * policy.lockoutMs);
    const held = throttle.begin('ada', '192.0.2.3', 0);
    expect(held.ok).toBe(false);
    expect(held.ok ? 0 : held.retryAfterMs).toBeLessThanOrEqual(policy.lockoutMs);
  });
});
