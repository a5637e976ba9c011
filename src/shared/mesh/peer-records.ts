// What a requester remembers of the peers and users of its room: recent failures and measured speed per peer
// (dropped when it leaves), answers each peer served, and per user the exclusions and the record of checks that
// held up (bounded: identities cost nothing to mint). The requester (job-requester.ts) writes it; ranking reads it.
import { BoundedMap } from './bounded-map.ts';
import type { RankingFacts } from './peer-ranking.ts';
import { PeerTrust } from './peer-trust.ts';

/** Users excluded here at once, at most; past it the oldest exclusion lapses (each one took a caught answer). */
export const EXCLUDED_USERS = 10_000;
/** Weight of a new speed sample in a peer's measured speed. */
export const SPEED_GAIN = 0.5;
export const FAILURE_MEMORY_MS = 5 * 60_000;
/** Each failure halves a peer's score: past this many, one more changes nothing worth keeping a timestamp for. */
export const FAILURES_KEPT = 16;

export class PeerRecords implements RankingFacts {
  private readonly failures = new Map<string, number[]>();
  private readonly speeds = new Map<string, number>();
  /** Users whose peers are excluded from scheduling in this room, with why (a caught peer cannot just reconnect). */
  private readonly excluded = new BoundedMap<string, string>(EXCLUDED_USERS);
  /** Finished answers each peer took part in, for the room's panel. */
  private readonly served = new Map<string, number>();
  /** Matching checks per user: a user new here is checked more often (see peer-trust.ts). */
  private readonly trust = new PeerTrust();

  constructor(
    /** Whether a peer is in the room now: results that arrive after a peer left must not bring its entries back. */
    private readonly isPresent: (peerId: string) => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Failures of `peerId` within the last FAILURE_MEMORY_MS (older ones are forgotten as they are counted). */
  recentFailures(peerId: string): number {
    const now = this.now();
    const recent = (this.failures.get(peerId) ?? []).filter((at) => now - at < FAILURE_MEMORY_MS);
    if (recent.length) this.failures.set(peerId, recent);
    else this.failures.delete(peerId);
    return recent.length;
  }

  failed(peerId: string): void {
    if (this.isPresent(peerId))
      this.failures.set(peerId, [...(this.failures.get(peerId) ?? []), this.now()].slice(-FAILURES_KEPT));
  }

  /** A finished job's speed sample (null: too short to measure), folded into the peer's measured speed. */
  measured(peerId: string, sample: number | null): void {
    if (sample === null || !this.isPresent(peerId)) return;
    const before = this.speeds.get(peerId);
    this.speeds.set(peerId, before === undefined ? sample : before + SPEED_GAIN * (sample - before));
  }

  /** Tokens per second this side measured on the peer's finished jobs; null before the first. */
  measuredTokensPerSecond(peerId: string): number | null {
    return this.speeds.get(peerId) ?? null;
  }

  /** These peers made part of a finished answer (each counted once). */
  servedAnswer(peerIds: Iterable<string>): void {
    for (const peerId of new Set(peerIds)) {
      if (this.isPresent(peerId)) this.served.set(peerId, this.servedCount(peerId) + 1);
    }
  }

  servedCount(peerId: string): number {
    return this.served.get(peerId) ?? 0;
  }

  /** `userId`'s peers are excluded here from now on; whatever record of checks it had counts for nothing. */
  exclude(userId: string, why: string): void {
    this.excluded.set(userId, why);
    this.trust.forget(userId);
  }

  /** Why `userId`'s peers are excluded here, or undefined when they are not. */
  exclusion(userId: string): string | undefined {
    return this.excluded.get(userId);
  }

  isExcluded(userId: string): boolean {
    return this.excluded.has(userId);
  }

  /** A check of an answer these users made held up. */
  matched(userIds: Iterable<string>): void {
    this.trust.matched(userIds);
  }

  matchesOf(userId: string): number {
    return this.trust.matchesOf(userId);
  }

  /** `peerId` left: nothing is kept about it (what is kept per user stays). */
  forget(peerId: string): void {
    this.failures.delete(peerId);
    this.speeds.delete(peerId);
    this.served.delete(peerId);
  }

  /** Entries kept per peer and per user, for tests that churn peers and watch memory. */
  footprint(): { peers: number; users: number } {
    const peers = new Set([...this.failures.keys(), ...this.speeds.keys(), ...this.served.keys()]);
    return { peers: peers.size, users: this.excluded.size + this.trust.size };
  }
}
