// Passwords as the OWASP password storage cheat sheet teaches: Argon2id, m=19456 KiB, t=2, p=1 (its first
// recommended setting), each hash with its own random salt, in the PHC string format.
import { type Algorithm, hash, verify } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import pLimit from 'p-limit';

const ARGON2ID: Algorithm = 2; // Algorithm.Argon2id: a const enum, which isolated modules cannot read

/** Set explicitly: the library's defaults could change under a version bump. */
export const ARGON2_OPTIONS = {
  algorithm: ARGON2ID,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
  outputLen: 32,
} as const;

/** What every hash made with ARGON2_OPTIONS starts with. */
export const PASSWORD_HASH_PREFIX = '$argon2id$v=19$m=19456,t=2,p=1$';

/**
 * Hashes run on worker threads, each taking a core for tens of milliseconds: at most one core less than the machine
 * has run at once, so a burst of sign-ins (within the per-address budgets, from many addresses) leaves a core to the
 * event loop, and every other request and socket keeps its pace (bench/abuse.ts). The rest wait their turn.
 */
const hashing = pLimit(Math.max(1, availableParallelism() - 1));

export function hashPassword(password: string): Promise<string> {
  return hashing(() => hash(password, ARGON2_OPTIONS));
}

// Unknown users are checked against this, so they cost the same time as a wrong password (docs/SECURITY.md).
let dummyHash: Promise<string> | undefined;

/**
 * True when `password` matches `stored`. A missing hash (unknown user, guest) or one that is not ours (not
 * Argon2id with our parameters) never matches, but still costs one verification.
 */
export async function verifyPassword(stored: string | null, password: string): Promise<boolean> {
  const ours = stored !== null && stored.startsWith(PASSWORD_HASH_PREFIX);
  dummyHash ??= hashPassword(randomBytes(16).toString('base64url'));
  const against = ours ? stored : await dummyHash;
  const matches = await hashing(() => verify(against, password)).catch(() => false);
  return ours && matches;
}
