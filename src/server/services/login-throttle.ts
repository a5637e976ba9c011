// Per-account login throttling (RELIABILITY 7; OWASP authentication cheat sheet): after `maxFailures` failed
// sign-ins in a row, a username is locked for `lockoutMs`, whatever IP the attempts come from; a success
// clears the count. Other usernames are unaffected.
//
// Where the state lives: for existing accounts in the database (User.failedLogins, User.lockedUntil), so the
// limit holds across server nodes and restarts; for usernames with no account in memory (per node, bounded),
// so that a lockout never tells an attacker which usernames exist (RELIABILITY 6). An attempt is counted
// *before* its password is checked (an atomic conditional increment), so a burst of parallel guesses cannot
// slip through while the first ones are still being verified.
import type { Db } from '../db/client.ts';

export interface ThrottlePolicy {
  maxFailures: number;
  lockoutMs: number;
}

export type Attempt = { ok: true } | { ok: false; retryAfterMs: number };

// Enough for any real burst of mistyped names; the oldest entry goes first past it (a flood of made-up names
// cannot grow memory without bound).
const MAX_UNKNOWN_ENTRIES = 10_000;

// The nil UUID: no user has it.
const NO_USER = '00000000-0000-0000-0000-000000000000';

interface Counter {
  failures: number;
  lockedUntil: number;
}

export class LoginThrottle {
  readonly #unknown = new Map<string, Counter>();

  constructor(readonly policy: ThrottlePolicy) {}

  /** Counts an attempt for `username` (account `userId`, or null when none has that name) unless it is locked. */
  async begin(db: Db, username: string, userId: string | null, now = new Date()): Promise<Attempt> {
    // Unknown usernames run the same statements against no row, so both cost the same (RELIABILITY 6).
    const id = userId ?? NO_USER;
    const { count } = await db.user.updateMany({
      where: {
        id,
        failedLogins: { lt: this.policy.maxFailures },
        OR: [{ lockedUntil: null }, { lockedUntil: { lte: now } }],
      },
      data: { failedLogins: { increment: 1 }, lockedUntil: null },
    });
    const unknown = userId === null ? this.#beginUnknown(username, now.getTime()) : null;
    if (unknown?.ok ?? count === 1) return { ok: true };
    // Refused: either locked, or the last allowed attempts are still being checked (or never finished, if a
    // node died mid-check). Lock now in the latter case, so a count stuck at the limit always expires.
    await this.fail(db, username, userId, now);
    const row = await db.user.findUnique({ where: { id }, select: { lockedUntil: true } });
    if (unknown) return unknown;
    const until = row?.lockedUntil?.getTime() ?? now.getTime() + this.policy.lockoutMs;
    return { ok: false, retryAfterMs: Math.max(until - now.getTime(), 1000) };
  }

  /** The attempt failed: locks the username once the failures reach the limit. */
  async fail(db: Db, username: string, userId: string | null, now = new Date()): Promise<void> {
    await db.user.updateMany({
      where: { id: userId ?? NO_USER, failedLogins: { gte: this.policy.maxFailures } },
      data: { failedLogins: 0, lockedUntil: new Date(now.getTime() + this.policy.lockoutMs) },
    });
    if (userId === null) this.#failUnknown(username, now.getTime());
  }

  /** The attempt succeeded: the count starts again. */
  async succeed(db: Db, userId: string): Promise<void> {
    await db.user.update({ where: { id: userId }, data: { failedLogins: 0, lockedUntil: null }, select: { id: true } });
  }

  #beginUnknown(username: string, now: number): Attempt {
    const counter = this.#unknown.get(username) ?? { failures: 0, lockedUntil: 0 };
    if (counter.failures >= this.policy.maxFailures) this.#failUnknown(username, now);
    const lockedUntil = this.#unknown.get(username)?.lockedUntil ?? 0;
    if (lockedUntil > now) return { ok: false, retryAfterMs: Math.max(lockedUntil - now, 1000) };
    // Re-inserted so the map stays ordered by last use, oldest first.
    this.#unknown.delete(username);
    this.#unknown.set(username, { failures: counter.failures + 1, lockedUntil: 0 });
    while (this.#unknown.size > MAX_UNKNOWN_ENTRIES) {
      const oldest = this.#unknown.keys().next();
      if (oldest.done) break;
      this.#unknown.delete(oldest.value);
    }
    return { ok: true };
  }

  #failUnknown(username: string, now: number): void {
    const counter = this.#unknown.get(username);
    if (counter && counter.failures >= this.policy.maxFailures) {
      this.#unknown.set(username, { failures: 0, lockedUntil: now + this.policy.lockoutMs });
    }
  }
}
