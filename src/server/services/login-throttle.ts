// Sign-in throttling that slows guessing without locking anyone out (docs/SECURITY.md, "Sign-in throttling"):
// failures are counted per username *and* address, so an attacker hammering a username from one address only
// slows themselves, while the right password from another address still signs in. After `maxFailures` failures
// each further one doubles the wait before the next attempt, up to `lockoutMs`. An address also has a counter
// across all usernames (IP_FACTOR times larger), so spraying many usernames from one address slows it down too.
//
// Counters are kept per node, in memory, bounded (the least recently failed go first) and forgotten a day after
// their last failure. The key is the given username whether or not an account has it, so the answers never
// tell which usernames exist. An attempt is counted before its password is checked and given back on success,
// so a burst of parallel guesses cannot slip through while the first ones are still being verified.
import ipaddr from 'ipaddr.js';

export interface ThrottlePolicy {
  /** Failures per username and address before the waits start. */
  maxFailures: number;
  /** The longest wait between attempts. */
  lockoutMs: number;
}

export type Attempt = { ok: true; ticket: Ticket } | { ok: false; retryAfterMs: number; message: string };

/** What `begin` counted: handed back to `fail` or `succeed`. */
export interface Ticket {
  readonly pair: string;
  readonly address: string;
}

/** The first wait; each further failure doubles it. */
const BASE_DELAY_MS = 1000;
/** An address may fail this many times more often than one username from it before its own waits start. */
export const IP_FACTOR = 10;
/** A counter with no failure for this long starts again from zero. */
const FORGET_AFTER_MS = 24 * 60 * 60 * 1000;
// About 100 bytes an entry: some 10 MB at most per map, however many usernames and addresses an attacker uses.
const MAX_PAIRS = 100_000;
const MAX_ADDRESSES = 50_000;

interface Counter {
  failures: number;
  /** When the latest failure (or attempt still being checked) happened. */
  last: number;
}

/** A Map that forgets its least recently written entry past `max`. */
class BoundedCounters {
  readonly #entries = new Map<string, Counter>();

  constructor(readonly max: number) {}

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, now: number): Counter {
    const entry = this.#entries.get(key);
    return entry && now - entry.last < FORGET_AFTER_MS ? entry : { failures: 0, last: 0 };
  }

  set(key: string, counter: Counter): void {
    // Re-inserted so the map stays ordered by last write, oldest first.
    this.#entries.delete(key);
    this.#entries.set(key, counter);
    if (this.#entries.size <= this.max) return;
    // A tenth at a time: a Map keeps deleted slots at its front until it rehashes, so trimming one entry per
    // insert would walk past all of them every time.
    const keep = Math.floor(this.max * 0.9);
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= keep) break;
      this.#entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }
}

/**
 * The address as counted: IPv4-mapped IPv6 as IPv4, and IPv6 by its /64, since one subscriber usually holds a
 * whole /64 and could otherwise take a fresh address for every guess.
 */
export function addressKey(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const parsed = ipaddr.process(ip);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${parts.map((part) => part.toString(16)).join(':')}::/64`;
}

export class LoginThrottle {
  readonly #pairs = new BoundedCounters(MAX_PAIRS);
  readonly #addresses = new BoundedCounters(MAX_ADDRESSES);

  constructor(readonly policy: ThrottlePolicy) {}

  /** The wait after `failures` failures, when `free` of them cost nothing. */
  #delay(failures: number, free: number): number {
    if (failures < free) return 0;
    // Capped before the power so a long run of failures cannot overflow to Infinity.
    return Math.min(BASE_DELAY_MS * 2 ** Math.min(failures - free, 40), this.policy.lockoutMs);
  }

  #wait(counter: Counter, free: number, now: number): number {
    const delay = this.#delay(counter.failures, free);
    // A clock stepped back (NTP) must not turn a short wait into one of years.
    return delay === 0 ? 0 : Math.max(Math.min(counter.last, now) + delay - now, 0);
  }

  /** Counts an attempt at `username` from `ip`, or refuses it while a wait is running. */
  begin(username: string, ip: string, now = Date.now()): Attempt {
    const address = addressKey(ip);
    const ticket: Ticket = { pair: `${address} ${username}`, address };
    const pair = this.#pairs.get(ticket.pair, now);
    const byAddress = this.#addresses.get(address, now);
    const perAddress = this.policy.maxFailures * IP_FACTOR;
    const pairWait = this.#wait(pair, this.policy.maxFailures, now);
    const addressWait = this.#wait(byAddress, perAddress, now);
    if (pairWait > 0 || addressWait > 0) {
      const retryAfterMs = Math.max(pairWait, addressWait, 1000);
      const what = addressWait > pairWait ? 'from this address' : 'for this username from this address';
      return {
        ok: false,
        retryAfterMs,
        message: `Too many failed sign-ins ${what}; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
      };
    }
    this.#pairs.set(ticket.pair, { failures: pair.failures + 1, last: now });
    this.#addresses.set(address, { failures: byAddress.failures + 1, last: now });
    return { ok: true, ticket };
  }

  /** The password was wrong: the count stands, and the wait runs from now. */
  fail(ticket: Ticket, now = Date.now()): void {
    for (const [counters, key] of this.#countersOf(ticket)) {
      const counter = counters.get(key, now);
      if (counter.failures > 0) counters.set(key, { failures: counter.failures, last: now });
    }
  }

  /** The password was right: that username starts again from this address, and the address gets its attempt back. */
  succeed(ticket: Ticket, now = Date.now()): void {
    this.#pairs.delete(ticket.pair);
    // Not cleared: an attacker's own account must not wash away the failures of their spraying.
    const byAddress = this.#addresses.get(ticket.address, now);
    if (byAddress.failures > 0)
      this.#addresses.set(ticket.address, { failures: byAddress.failures - 1, last: byAddress.last });
  }

  /** The check itself failed (the database was down): the attempt is given back, neither right nor wrong. */
  release(ticket: Ticket, now = Date.now()): void {
    for (const [counters, key] of this.#countersOf(ticket)) {
      const counter = counters.get(key, now);
      if (counter.failures > 0) counters.set(key, { failures: counter.failures - 1, last: counter.last });
    }
  }

  /** The ticket's two counters: its username from its address, and its address across usernames. */
  #countersOf(ticket: Ticket) {
    return [
      [this.#pairs, ticket.pair],
      [this.#addresses, ticket.address],
    ] as const;
  }

  /** Entries held, for tests of the memory bound. */
  get size(): { pairs: number; addresses: number } {
    return { pairs: this.#pairs.size, addresses: this.#addresses.size };
  }
}
