import { TRPCError } from '@trpc/server';
import { randomInt } from 'node:crypto';
import {
  ChangePasswordInputSchema,
  GuestInputSchema,
  LoginInputSchema,
  SignupInputSchema,
} from '../../../shared/schemas/auth.ts';
import type { Db } from '../../db/client.ts';
import { Prisma } from '../../db/generated/client.ts';
import { hashPassword, verifyPassword } from '../../services/password.ts';
import {
  type ValidSession,
  createSession,
  invalidateOtherSessions,
  invalidateSession,
  sessionUserSelect,
} from '../../services/session.ts';
import { type Context, clearSessionCookie, setSessionCookie } from '../context.ts';
import { authedProcedure, publicProcedure, router } from '../init.ts';

// One answer for an unknown username and a wrong password (RELIABILITY 6).
const WRONG_CREDENTIALS = 'Wrong username or password';

interface Started {
  token: string;
  session: ValidSession;
  /** The session the request came with, now deleted. */
  replaced: ValidSession | null;
}

/**
 * A sign-in always gets a new session, and the one the request came with (a guest's, or a planted cookie)
 * is deleted: no session id survives a change of who is signed in (RELIABILITY 3, session fixation).
 */
async function startSession(tx: Db, ctx: Context, userId: string): Promise<Started> {
  if (ctx.session) await invalidateSession(tx, ctx.session.id);
  const { token, session } = await createSession(tx, userId, ctx.sessionPolicy, { userAgent: ctx.req.headers['user-agent'] });
  return { token, session, replaced: ctx.session };
}

/** After the transaction committed: the cookie, and the replaced session's sockets told to go. */
function finishSignIn(ctx: Context, { token, session, replaced }: Started) {
  if (replaced) ctx.sessionEvents.revoked(replaced.userId, [replaced.id]);
  setSessionCookie(ctx, token, session.expiresAt);
  return session.user;
}

/** TOO_MANY_REQUESTS with a `Retry-After` header (RELIABILITY 7). */
function throttled(ctx: Context, retryAfterMs: number): TRPCError {
  const seconds = Math.ceil(retryAfterMs / 1000);
  void ctx.res.header('retry-after', String(seconds));
  return new TRPCError({ code: 'TOO_MANY_REQUESTS', message: `Too many failed attempts for this username; retry in ${seconds} s` });
}

/** Prisma's P2002 on PostgreSQL; PGlite's adapter leaves it unmapped, with PostgreSQL's 23505 in the cause. */
function isUniqueViolation(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientKnownRequestError) return error.code === 'P2002';
  const cause: unknown = error instanceof Error ? error.cause : undefined;
  return typeof cause === 'object' && cause !== null && 'code' in cause && cause.code === '23505';
}

export const authRouter = router({
  /** The signed-in person (account or guest), or null. */
  me: publicProcedure.query(({ ctx }) => ctx.session?.user ?? null),

  /** A guest identity: its own session cookie, a UUID peer id and a display name. */
  guest: publicProcedure.input(GuestInputSchema).mutation(async ({ ctx, input }) => {
    const displayName = input.displayName ?? `Guest ${randomInt(1000, 10000)}`;
    const { token, session } = await ctx.db.$transaction(async (tx) => {
      const user = await tx.user.create({ data: { kind: 'GUEST', displayName }, select: sessionUserSelect });
      return createSession(tx, user.id, ctx.sessionPolicy, { userAgent: ctx.req.headers['user-agent'] });
    });
    setSessionCookie(ctx, token, session.expiresAt);
    return session.user;
  }),

  /** A new account; a signed-in guest keeps their user row (id, display name, rooms, history): it becomes the account. */
  signup: publicProcedure.input(SignupInputSchema).mutation(async ({ ctx, input }) => {
    const passwordHash = await hashPassword(input.password);
    const guestId = ctx.session?.user.kind === 'GUEST' ? ctx.session.userId : null;
    const started = await ctx.db
      .$transaction(async (tx) => {
        if (guestId === null) {
          const data = { kind: 'ACCOUNT', username: input.username, passwordHash, displayName: input.displayName ?? input.username } as const;
          const user = await tx.user.create({ data, select: { id: true } });
          return startSession(tx, ctx, user.id);
        }
        const { count } = await tx.user.updateMany({
          where: { id: guestId, kind: 'GUEST' },
          data: { kind: 'ACCOUNT', username: input.username, passwordHash, ...(input.displayName ? { displayName: input.displayName } : {}) },
        });
        if (count === 0) throw new TRPCError({ code: 'CONFLICT', message: 'This guest has already signed up' });
        return startSession(tx, ctx, guestId);
      })
      .catch((error: unknown) => {
        // Telling that a name is taken is inherent to sign-up; the per-IP rate limit bounds enumeration.
        if (isUniqueViolation(error)) throw new TRPCError({ code: 'CONFLICT', message: 'That username is taken' });
        throw error;
      });
    return finishSignIn(ctx, started);
  }),

  login: publicProcedure.input(LoginInputSchema).mutation(async ({ ctx, input }) => {
    const user = await ctx.db.user.findUnique({ where: { username: input.username }, select: { id: true, passwordHash: true } });
    const userId = user?.id ?? null;
    const attempt = await ctx.loginThrottle.begin(ctx.db, input.username, userId);
    if (!attempt.ok) throw throttled(ctx, attempt.retryAfterMs);
    // Unknown users are verified against a dummy hash: the same work as a wrong password.
    const matches = await verifyPassword(user?.passwordHash ?? null, input.password);
    if (!matches || userId === null) {
      await ctx.loginThrottle.fail(ctx.db, input.username, userId);
      throw new TRPCError({ code: 'UNAUTHORIZED', message: WRONG_CREDENTIALS });
    }
    await ctx.loginThrottle.succeed(ctx.db, userId);
    return finishSignIn(ctx, await ctx.db.$transaction((tx) => startSession(tx, ctx, userId)));
  }),

  /** Ends the session on the server (and its sockets), not just in this browser. */
  logout: publicProcedure.mutation(async ({ ctx }) => {
    if (ctx.session) {
      await invalidateSession(ctx.db, ctx.session.id);
      ctx.sessionEvents.revoked(ctx.session.userId, [ctx.session.id]);
    }
    clearSessionCookie(ctx);
    return null;
  }),

  /** Needs the current password; every other session of the account ends (a thief's included). */
  changePassword: authedProcedure.input(ChangePasswordInputSchema).mutation(async ({ ctx, input }) => {
    const { session } = ctx;
    if (session.user.kind !== 'ACCOUNT') throw new TRPCError({ code: 'FORBIDDEN', message: 'Guests have no password: sign up first' });
    const user = await ctx.db.user.findUniqueOrThrow({ where: { id: session.userId }, select: { passwordHash: true } });
    // Guessing the current password from a stolen session counts against the same per-account limit.
    const attempt = await ctx.loginThrottle.begin(ctx.db, session.user.username ?? '', session.userId);
    if (!attempt.ok) throw throttled(ctx, attempt.retryAfterMs);
    if (!(await verifyPassword(user.passwordHash, input.currentPassword))) {
      await ctx.loginThrottle.fail(ctx.db, session.user.username ?? '', session.userId);
      throw new TRPCError({ code: 'FORBIDDEN', message: 'The current password is wrong' });
    }
    await ctx.loginThrottle.succeed(ctx.db, session.userId);
    const passwordHash = await hashPassword(input.newPassword);
    const revoked = await ctx.db.$transaction(async (tx) => {
      await tx.user.update({ where: { id: session.userId }, data: { passwordHash }, select: { id: true } });
      return invalidateOtherSessions(tx, session.userId, session.id);
    });
    ctx.sessionEvents.revoked(session.userId, revoked);
    return { revokedSessions: revoked.length };
  }),
});
