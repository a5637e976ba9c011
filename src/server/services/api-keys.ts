// API keys for the OpenAI-compatible API (docs/SECURITY.md, "API keys"): `mnl_` + 43 base62 characters from 32
// random bytes, so secret scanners can spot them; the database holds only sha256(key) and a short prefix for lists.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Prisma } from '../db/generated/client.ts';
import type { PrismaClient } from '../db/client.ts';
import { API_KEY_LIMITS, type ApiKeyInfo } from '../../shared/schemas/api-key.ts';
import { ServiceError } from './errors.ts';

export const API_KEY_PREFIX = 'mnl_';
const SECRET_BYTES = 32;
/** 62^43 > 2^256: every 32-byte value fits in 43 base62 digits. */
const SECRET_CHARS = 43;
const SHOWN_CHARS = 12;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const API_KEY_PATTERN = /^mnl_[0-9A-Za-z]{43}$/;
/** lastUsedAt is written at most this often per key. */
const LAST_USED_RESOLUTION_MS = 60_000;

function base62(bytes: Buffer): string {
  let value = BigInt(`0x${bytes.toString('hex')}`);
  let text = '';
  for (let i = 0; i < SECRET_CHARS; i++) {
    text = BASE62[Number(value % 62n)] + text;
    value /= 62n;
  }
  return text;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

const infoSelect = {
  id: true,
  name: true,
  prefix: true,
  createdAt: true,
  lastUsedAt: true,
  revokedAt: true,
} satisfies Prisma.ApiKeySelect;

/** Makes a key for `userId`; the key itself is in the answer and nowhere else. */
export async function createApiKey(
  db: PrismaClient,
  userId: string,
  name: string,
): Promise<{ key: string; info: ApiKeyInfo }> {
  const key = API_KEY_PREFIX + base62(randomBytes(SECRET_BYTES));
  return db.$transaction(async (tx) => {
    // Serialize this account's creations: the count below sees every other one, so a burst cannot pass the cap.
    await tx.$queryRaw`SELECT id FROM "User" WHERE id = ${userId}::uuid FOR UPDATE`;
    const active = await tx.apiKey.count({ where: { userId, revokedAt: null } });
    if (active >= API_KEY_LIMITS.activePerAccount) {
      throw new ServiceError(
        'FORBIDDEN',
        `An account may hold at most ${API_KEY_LIMITS.activePerAccount} keys; revoke one you no longer use`,
      );
    }
    // Revoked keys are kept for the record, but not without end.
    const stale = await tx.apiKey.findMany({
      where: { userId, revokedAt: { not: null } },
      orderBy: { revokedAt: 'desc' },
      skip: API_KEY_LIMITS.revokedKept,
      select: { id: true },
    });
    if (stale.length > 0) await tx.apiKey.deleteMany({ where: { id: { in: stale.map((row) => row.id) } } });
    const info = await tx.apiKey.create({
      data: { userId, name, prefix: key.slice(0, SHOWN_CHARS), hash: hashApiKey(key) },
      select: infoSelect,
    });
    return { key, info };
  });
}

/** The account's keys, unrevoked first, each group newest first. */
export async function listApiKeys(db: PrismaClient, userId: string): Promise<ApiKeyInfo[]> {
  const keys = await db.apiKey.findMany({ where: { userId }, orderBy: { createdAt: 'desc' }, select: infoSelect });
  return [...keys.filter((key) => key.revokedAt === null), ...keys.filter((key) => key.revokedAt !== null)];
}

/**
 * Revokes one of the account's own keys (again is a no-op that keeps the first time); another account's key id is
 * "not found", as an unknown one is.
 */
export async function revokeApiKey(
  db: PrismaClient,
  userId: string,
  id: string,
  now = new Date(),
): Promise<ApiKeyInfo> {
  verifiedKeys.get(db)?.forget(id);
  await db.apiKey.updateMany({ where: { id, userId, revokedAt: null }, data: { revokedAt: now } });
  verifiedKeys.get(db)?.forget(id);
  const key = await db.apiKey.findFirst({ where: { id, userId }, select: infoSelect });
  if (!key) throw new ServiceError('NOT_FOUND', 'No such key among yours');
  return key;
}

export interface KeyHolder {
  keyId: string;
  userId: string;
}

/** How long a verified key is trusted without a lookup, where that is on (trustVerifiedApiKeys). */
export const VERIFIED_KEY_TTL_MS = 60_000;
/** Verified keys kept at most, per database (an account holds at most 20 unrevoked keys; only valid ones are kept). */
const VERIFIED_KEYS_MAX = 10_000;

/**
 * Keys that passed the lookup in the last VERIFIED_KEY_TTL_MS, by sha256. Only for a database that this process
 * alone writes (the embedded PGlite): every revocation then passes through revokeApiKey here, which forgets the key
 * before and after its write, so revoking still stops the key at once. A lookup that began before a revocation
 * cannot store its stale answer after it: `forget` moves the epoch on, and an answer from an older epoch is not kept.
 */
class VerifiedKeys {
  readonly #entries = new Map<string, { holder: KeyHolder; until: number; lastUsedAt: number }>();
  #epoch = 0;

  get epoch(): number {
    return this.#epoch;
  }

  get(hash: string, now: number): { holder: KeyHolder; lastUsedAt: number } | undefined {
    const entry = this.#entries.get(hash);
    if (entry && entry.until <= now) this.#entries.delete(hash);
    return entry && entry.until > now ? entry : undefined;
  }

  keep(hash: string, holder: KeyHolder, lastUsedAt: number, epoch: number, now: number): void {
    if (epoch !== this.#epoch) return;
    this.#entries.delete(hash);
    if (this.#entries.size >= VERIFIED_KEYS_MAX) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(hash, { holder, until: now + VERIFIED_KEY_TTL_MS, lastUsedAt });
  }

  used(hash: string, at: number): void {
    const entry = this.#entries.get(hash);
    if (entry) entry.lastUsedAt = at;
  }

  forget(keyId: string): void {
    this.#epoch++;
    for (const [hash, entry] of this.#entries) if (entry.holder.keyId === keyId) this.#entries.delete(hash);
  }
}

const verifiedKeys = new WeakMap<PrismaClient, VerifiedKeys>();

/**
 * Lets authenticateApiKey answer from keys it verified in the last minute instead of a query each time: on the
 * embedded PGlite the lookup runs on the server's own thread and took 8 to 32 ms of a /v1 stream's time to first token
 * (bench/README.md, issue 14). Call it only for a database no other process writes (see VerifiedKeys).
 */
export function trustVerifiedApiKeys(db: PrismaClient): void {
  if (!verifiedKeys.has(db)) verifiedKeys.set(db, new VerifiedKeys());
}

/**
 * The account a presented key belongs to, or null when it is malformed, unknown, revoked, or its account is not an
 * account. The lookup is by sha256 of the whole key: an attacker cannot steer the digest byte by byte, so timing
 * reveals nothing about stored keys; the digests are compared again in constant time all the same. Where
 * trustVerifiedApiKeys is on, a key verified in the last minute and not revoked since is answered without a query.
 */
export async function authenticateApiKey(
  db: PrismaClient,
  presented: string,
  now = new Date(),
): Promise<KeyHolder | null> {
  if (!API_KEY_PATTERN.test(presented)) return null;
  const hash = hashApiKey(presented);
  const cache = verifiedKeys.get(db);
  const cached = cache?.get(hash, now.getTime());
  if (cached) {
    if (now.getTime() - cached.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
      cache!.used(hash, now.getTime());
      // Not awaited: a usage time is no reason to hold the request (it is written at most once a minute anyway).
      void db.apiKey
        .updateMany({ where: { id: cached.holder.keyId, revokedAt: null }, data: { lastUsedAt: now } })
        .catch(() => undefined);
    }
    return cached.holder;
  }
  const epoch = cache?.epoch ?? 0;
  const row = await db.apiKey.findUnique({
    where: { hash },
    select: { id: true, userId: true, hash: true, revokedAt: true, lastUsedAt: true, user: { select: { kind: true } } },
  });
  if (!row || !timingSafeEqual(Buffer.from(row.hash), Buffer.from(hash))) return null;
  if (row.revokedAt !== null || row.user.kind !== 'ACCOUNT') return null;
  let lastUsedAt = row.lastUsedAt?.getTime() ?? -Infinity;
  if (now.getTime() - lastUsedAt >= LAST_USED_RESOLUTION_MS) {
    await db.apiKey.updateMany({ where: { id: row.id, revokedAt: null }, data: { lastUsedAt: now } });
    lastUsedAt = now.getTime();
  }
  const holder = { keyId: row.id, userId: row.userId };
  cache?.keep(hash, holder, lastUsedAt, epoch, now.getTime());
  return holder;
}
