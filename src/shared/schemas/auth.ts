import { z } from 'zod';

export const DisplayNameSchema = z
  .string()
  .trim()
  .min(1, 'Display name cannot be empty')
  .max(64, 'Display name is at most 64 characters')
  // Control characters would garble other people's member lists.
  .regex(/^[^\p{Cc}\p{Cf}]+$/u, 'Display name cannot contain control characters');

export const GuestInputSchema = z.object({ displayName: DisplayNameSchema.optional() }).strict();
export type GuestInput = z.infer<typeof GuestInputSchema>;
