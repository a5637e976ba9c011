// API key contracts (apiKey.create, list, revoke), shared by the server and the Account screen.
import { z } from 'zod';

export const API_KEY_LIMITS = {
  /** Keys an account may hold unrevoked at once: enough for each tool and machine, not a key per request. */
  activePerAccount: 20,
  /** Revoked keys kept per account for the record (older ones are deleted when a new key is made). */
  revokedKept: 20,
  nameChars: 64,
} as const;

export const ApiKeyCreateSchema = z
  .object({
    name: z
      .string()
      .trim()
      .min(1, 'Name the key (say where it will be used)')
      .max(API_KEY_LIMITS.nameChars, `A key name is at most ${API_KEY_LIMITS.nameChars} characters`)
      .regex(/^[^\p{Cc}\p{Cf}]+$/u, 'A key name cannot contain control characters'),
  })
  .strict();
export type ApiKeyCreateInput = z.input<typeof ApiKeyCreateSchema>;

export const ApiKeyRefSchema = z.object({ id: z.uuid('Not a key id') }).strict();

/** What a list shows of a key: never the key itself, which only apiKey.create returns, once. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  /** The key's first characters (`mnl_AbCd1234`), to tell keys apart. */
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}
