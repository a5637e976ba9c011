// Memory limiters drop a window's record on a timer as well as by the clock: both are faked, so a slow machine
// cannot end a window in the middle of a test.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { testEnv } from '../../../tests/support/env.ts';
import { BURST_WINDOW_MS, Budgets, burstPoints } from './budgets.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('burstPoints', () => {
  it('gives each window its share of RATE_LIMIT_BURST_SECONDS of the average rate, at least the minimum', () => {
    // 600 a minute is 10 a second; three seconds' worth is 30 a second, 7.5 per 250 ms window.
    expect(BURST_WINDOW_MS).toBe(250);
    expect(burstPoints(600, 60, 3)).toBe(8);
    expect(burstPoints(600, 60, 3, 10)).toBe(10);
    // 20 a minute: well under one point per window, so one.
    expect(burstPoints(20, 60, 3)).toBe(1);
  });

  it('is null when the burst would be the whole budget (smoothing off)', () => {
    expect(burstPoints(600, 60, 3600)).toBeNull();
    expect(burstPoints(2, 3600, 3600)).toBeNull();
    expect(burstPoints(2, 3600, 60)).toBe(1);
    expect(burstPoints(5, 60, 3, 10)).toBeNull();
  });
});

describe('Budgets', () => {
  it("spreads a budget over its window: a flood's first second spends a burst, not the minute", async () => {
    vi.useFakeTimers({ now: new Date('2026-12-03T00:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const budgets = new Budgets(testEnv({ CHATS_PER_USER_PER_MINUTE: '480', RATE_LIMIT_BURST_SECONDS: '2' }));
    const who = { ip: '203.0.113.9', userId: 'user-1' };
    // 480 a minute is 8 a second; two seconds' worth is 16 a second, 4 per 250 ms window.
    const first = await Promise.all(Array.from({ length: 6 }, () => budgets.spend('chat', who)));
    expect(first.filter((spend) => spend.ok)).toHaveLength(4);
    const refused = first.find((spend) => !spend.ok);
    expect(refused).toMatchObject({
      ok: false,
      message: expect.stringMatching(/at most 4 in any 250 ms \(480 per minute\)/),
    });
    // The next window has its burst again.
    vi.advanceTimersByTime(BURST_WINDOW_MS + 1);
    const second = await Promise.all(Array.from({ length: 4 }, () => budgets.spend('chat', who)));
    expect(second.every((spend) => spend.ok)).toBe(true);
  });

  it("checks the burst first, so what it refuses spends nothing of the window's budget", async () => {
    vi.useFakeTimers({ now: new Date('2026-12-03T00:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    // 8 a minute, 30 seconds' worth per second: one per 250 ms window.
    const budgets = new Budgets(testEnv({ AUTH_ATTEMPTS_PER_IP_PER_MINUTE: '8', RATE_LIMIT_BURST_SECONDS: '30' }));
    const who = { ip: '203.0.113.9' };
    const flood = await Promise.all(Array.from({ length: 8 }, () => budgets.spend('auth', who)));
    expect(flood.filter((spend) => spend.ok)).toHaveLength(1);
    for (let window = 1; window < 8; window++) {
      vi.advanceTimersByTime(BURST_WINDOW_MS + 1);
      expect(await budgets.spend('auth', who)).toEqual({ ok: true });
    }
    vi.advanceTimersByTime(BURST_WINDOW_MS + 1);
    expect(await budgets.spend('auth', who)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/at most 8 per minute/),
    });
  });

  it('lets a full tRPC batch through at once, and does not smooth guest creation', async () => {
    vi.useFakeTimers({ now: new Date('2026-12-03T00:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const budgets = new Budgets(
      testEnv({
        RATE_LIMIT_MAX: '600',
        TRPC_MAX_BATCH_SIZE: '10',
        GUEST_CREATIONS_PER_IP_PER_HOUR: '20',
        RATE_LIMIT_BURST_SECONDS: '3',
      }),
    );
    const calls = await Promise.all(Array.from({ length: 11 }, () => budgets.spend('call', { ip: '203.0.113.9' })));
    expect(calls.filter((spend) => spend.ok)).toHaveLength(10);
    // A class behind one address opens the app at once: all twenty guests of the hour, in one second.
    const guests = await Promise.all(Array.from({ length: 21 }, () => budgets.spend('guest', { ip: '198.51.100.7' })));
    expect(guests.filter((spend) => spend.ok)).toHaveLength(20);
  });
});
