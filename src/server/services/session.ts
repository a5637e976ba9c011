// Sessions as the Lucia guide teaches them (the `lucia` package is deprecated): the cookie holds
// `<id>.<secret>`, the database only `sha256(secret)`, compared in constant time. Sliding idle expiry plus
// an absolute cap that is never extended.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/client.ts';
import type { UserKind } from '../db/generated/enums.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const ID_BYTES = 15; // 120 bits, 20 base64url characters
const SECRET_BYTES = 24; // 192 bits, 32 base64url characters
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{20}\.[A-Za-z0-9_-]{32}$/;

export interface SessionPolicy {
  idleMs: number;
  maxMs: number;
}

export function sessionPolicy(idleDays: number, maxDays: number): SessionPolicy {
  return { idleMs: idleDays * DAY_MS, maxMs: maxDays * DAY_MS };
}

export const sessionUserSelect = { id: true, kind: true, username: true, displayName: true } as const;

export interface SessionUser {
  id: string;
  kind: UserKind;
  username: string | null;
  displayName: string;
}

export interface ValidSession {
  id: string;
  userId: string;
  idleExpiresAt: Date;
  expiresAt: Date;
  user: SessionUser;
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export async function createSession(
  db: Db,
  userId: string,
  policy: SessionPolicy,
  meta: { userAgent?: string | undefined } = {},
  now = new Date(),
): Promise<{ token: string; session: ValidSession }> {
  const id = randomBytes(ID_BYTES).toString('base64url');
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  const expiresAt = new Date(now.getTime() + policy.maxMs);
  const idleExpiresAt = new Date(Math.min(now.getTime() + policy.idleMs, expiresAt.getTime()));
  const row = await db.session.create({
    data: {
      id,
      secretHash: hashSecret(secret),
      userId,
      idleExpiresAt,
      expiresAt,
      lastActiveAt: now,
      userAgent: meta.userAgent?.slice(0, 256) ?? null,
    },
    select: { id: true, userId: true, idleExpiresAt: true, expiresAt: true, user: { select: sessionUserSelect } },
  });
  return { token: `${id}.${secret}`, session: row };
}

/**
 * Returns the session a token names, or null when it is malformed, unknown, expired, or its secret does not
 * match. Use slides the idle expiry forward (written at most once per tenth of the idle window).
 */
export async function validateSessionToken(
  db: Db,
  token: string,
  policy: SessionPolicy,
  now = new Date(),
): Promise<ValidSession | null> {
  if (!TOKEN_PATTERN.test(token)) return null;
  const [id = '', secret = ''] = token.split('.');
  const row = await db.session.findUnique({
    where: { id },
    select: {
      id: true,
      userId: true,
      secretHash: true,
      idleExpiresAt: true,
      expiresAt: true,
      user: { select: sessionUserSelect },
    },
  });
  if (!row) return null;
  const expected = Buffer.from(row.secretHash, 'hex');
  const given = Buffer.from(hashSecret(secret), 'hex');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  if (now >= row.expiresAt || now >= row.idleExpiresAt) {
    await db.session.deleteMany({ where: { id } });
    return null;
  }
  const { secretHash: _secretHash, ...session } = row;
  const slid = new Date(Math.min(now.getTime() + policy.idleMs, row.expiresAt.getTime()));
  if (slid.getTime() - row.idleExpiresAt.getTime() >= policy.idleMs / 10) {
    await db.session.update({ where: { id }, data: { idleExpiresAt: slid, lastActiveAt: now } });
    session.idleExpiresAt = slid;
  }
  return session;
}

export async function invalidateSession(db: Db, id: string): Promise<void> {
  await db.session.deleteMany({ where: { id } });
}

/**
 * Deletes every session of `userId` except `keepId` and returns the ids it deleted: exactly those, so the
 * sockets of each can be closed (a find-then-delete could miss a session created in between).
 */
export async function invalidateOtherSessions(db: Db, userId: string, keepId: string): Promise<string[]> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    DELETE FROM "Session" WHERE "userId" = ${userId}::uuid AND "id" <> ${keepId} RETURNING "id"`;
  return rows.map((row) => row.id);
}
