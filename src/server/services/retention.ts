// What the server forgets on its own (docs/SECURITY.md, "Guests and retention"): anyone can become a guest in
// one request, so guests and their records must not pile up for ever. Deletes run in batches, each its own
// statement, so a large backlog never holds long locks; several nodes may run this at once (a row deleted by
// one is simply not found by the other).
import type { PrismaClient } from '../db/client.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetentionPolicy {
  /** A guest with no session used for this long is deleted (GUEST_RETENTION_DAYS). */
  guestRetentionDays: number;
  /** Rows per delete statement. */
  batchSize?: number;
}

export interface Purged {
  sessions: number;
  guests: number;
}

// A bound on one run's work however large the backlog: the next run carries on.
const MAX_BATCHES = 200;

/** Runs `step` (select a batch, delete it) until a batch comes back short; returns how many rows it deleted. */
async function inBatches(
  batchSize: number,
  step: () => Promise<{ selected: number; deleted: number }>,
): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < MAX_BATCHES; batch++) {
    const { selected, deleted } = await step();
    total += deleted;
    if (selected < batchSize) break;
    // Let requests in between batches.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return total;
}

/**
 * Deletes accounts' expired sessions, and guests idle for the retention period with everything they own (their
 * sessions, memberships, jobs, conversations and reports go by the schema's cascades; jobs they served and
 * mismatches against them stay, without them).
 *
 * A guest has no password: once its sessions are gone nobody can be that guest again. Its expired sessions are
 * kept until the guest itself goes, since their last use is what says how long it has been idle.
 */
export async function purgeStale(db: PrismaClient, policy: RetentionPolicy, now = new Date()): Promise<Purged> {
  const batchSize = policy.batchSize ?? 500;
  const cutoff = new Date(now.getTime() - policy.guestRetentionDays * DAY_MS);

  const guests = await inBatches(batchSize, async () => {
    const idle = await db.user.findMany({
      where: { kind: 'GUEST', updatedAt: { lt: cutoff }, sessions: { none: { lastActiveAt: { gte: cutoff } } } },
      select: { id: true },
      take: batchSize,
    });
    if (idle.length === 0) return { selected: 0, deleted: 0 };
    // Checked again in the delete: a guest that signed up or came back since the select stays.
    const { count } = await db.user.deleteMany({
      where: {
        id: { in: idle.map((user) => user.id) },
        kind: 'GUEST',
        sessions: { none: { lastActiveAt: { gte: cutoff } } },
      },
    });
    return { selected: idle.length, deleted: count };
  });

  const sessions = await inBatches(batchSize, async () => {
    const expired = await db.session.findMany({
      where: { user: { kind: 'ACCOUNT' }, OR: [{ expiresAt: { lte: now } }, { idleExpiresAt: { lte: now } }] },
      select: { id: true },
      take: batchSize,
    });
    if (expired.length === 0) return { selected: 0, deleted: 0 };
    const { count } = await db.session.deleteMany({ where: { id: { in: expired.map((session) => session.id) } } });
    return { selected: expired.length, deleted: count };
  });

  return { sessions, guests };
}
