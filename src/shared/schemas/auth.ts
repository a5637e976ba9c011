import { z } from 'zod';

export const DisplayNameSchema = z
  .string()
  .trim()
  .min(1, 'Display name cannot be empty')
  .max(64, 'Display name is at most 64 characters')
  // Control characters would garble other people's member lists.
  .regex(/^[^\p{Cc}\p{Cf}]*$/u, 'Display name cannot contain control characters');

export const GuestInputSchema = z.object({ displayName: DisplayNameSchema.optional() }).strict();
export type GuestInput = z.infer<typeof GuestInputSchema>;

/** Login names: stored lower-cased, so `Ada` and `ada` are one account. */
export const UsernameSchema = z
  .string()
  .max(256, 'Username is at most 32 characters') // bounds the work before trimming
  .trim()
  .toLowerCase()
  .min(3, 'Username is at least 3 characters')
  .max(32, 'Username is at most 32 characters')
  .regex(/^[a-z0-9_-]+$/, 'Username may contain only letters, digits, _ and -');

// 8 is NIST SP 800-63B's floor; the cap keeps one hash from being a denial of service (OWASP passwords sheet).
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

export const PasswordSchema = z
  .string()
  .min(PASSWORD_MIN, `Password is at least ${PASSWORD_MIN} characters`)
  .max(PASSWORD_MAX, `Password is at most ${PASSWORD_MAX} characters`);

/** At login only the cap applies: a rule made stricter later must not lock out existing accounts. */
const GivenPasswordSchema = z
  .string()
  .min(1, 'Password cannot be empty')
  .max(PASSWORD_MAX, `Password is at most ${PASSWORD_MAX} characters`);

export const SignupInputSchema = z
  .object({ username: UsernameSchema, password: PasswordSchema, displayName: DisplayNameSchema.optional() })
  .strict();
export type SignupInput = z.infer<typeof SignupInputSchema>;

export const LoginInputSchema = z.object({ username: UsernameSchema, password: GivenPasswordSchema }).strict();
export type LoginInput = z.infer<typeof LoginInputSchema>;

export const ChangePasswordInputSchema = z
  .object({ currentPassword: GivenPasswordSchema, newPassword: PasswordSchema })
  .strict()
  .refine((input) => input.newPassword !== input.currentPassword, {
    path: ['newPassword'],
    message: 'New password must differ from the current one',
  });
export type ChangePasswordInput = z.infer<typeof ChangePasswordInputSchema>;
