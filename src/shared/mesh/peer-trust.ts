// How often to spot-check an answer, from what this requester has seen of the users who made it. A new identity
// costs nothing (one request makes a guest), so being new must never mean being trusted: answers from a user with
// fewer than `trustAfterMatches` matching checks here are checked at the newcomer rate, and only a record of
// checks that held up brings the rate down to the one the person chose.
import { BoundedMap } from './bounded-map.ts';

export interface TrustPolicy {
  /** Share of answers from trusted users that are checked (0 to 1); 0 means the person chose never to check. */
  spotCheckRate: number;
  /** Share of answers checked while any user who made it is still new here (0 to 1). */
  newcomerCheckRate: number;
  /** Matching checks after which a user's answers are checked at `spotCheckRate` only. */
  trustAfterMatches: number;
}

/**
 * The share of an answer made by users with these match counts that is checked. Never below the chosen rate; a
 * chosen rate of 0 ("never") is respected, since checks spend other people's compute.
 */
export function checkRate(policy: TrustPolicy, matchCounts: readonly number[]): number {
  if (policy.spotCheckRate <= 0) return 0;
  const newcomer = matchCounts.some((matches) => matches < policy.trustAfterMatches);
  return newcomer ? Math.max(policy.spotCheckRate, policy.newcomerCheckRate) : policy.spotCheckRate;
}

/** Users seen here (a room's worth many times over); forgetting one only makes it new again, never trusted. */
export const TRUST_RECORDS = 1000;

/** Matching checks per user, as this requester saw them; bounded, the least recently confirmed forgotten first. */
export class PeerTrust {
  private readonly matches: BoundedMap<string, number>;

  constructor(limit = TRUST_RECORDS) {
    this.matches = new BoundedMap(limit);
  }

  matchesOf(userId: string): number {
    return this.matches.get(userId) ?? 0;
  }

  /** A check of an answer these users made held up. */
  matched(userIds: Iterable<string>): void {
    for (const userId of new Set(userIds)) this.matches.set(userId, this.matchesOf(userId) + 1);
  }

  /** The user was caught: whatever record it had counts for nothing now. */
  forget(userId: string): void {
    this.matches.delete(userId);
  }

  /** Users with a record here. */
  get size(): number {
    return this.matches.size;
  }
}
