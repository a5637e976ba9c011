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
import type { Ticket } from '../../services/login-throttle.ts';
import { hashPassword, verifyPassword } from '../../services/password.ts';
import {
  type ValidSession,
  createSession,
  invalidateOtherSessions,
  invalidateSession,
} from '../../services/session.ts';
import { type Context, clearSessionCookie, setSessionCookie } from '../context.ts';
import { authedProcedure, costly, publicProcedure, router, tooManyRequests } from '../init.ts';

// One answer for an unknown username and a wrong password (docs/SECURITY.md).
const WRONG_CREDENTIALS = 'Wrong username or password';

interface Started {
  token: string;
  session: ValidSession;
  /** The session the request came with, now deleted. */
  replaced: ValidSession | null;
}

/**
 * A sign-in always gets a new session, and the one the request came with (a guest's, or a planted cookie)
 * is deleted: no session id survives a change of who is signed in (session fixation; docs/SECURITY.md).
 */
async function startSession(tx: Db, ctx: Context, userId: string): Promise<Started> {
  if (ctx.session) await invalidateSession(tx, ctx.session.id);
  const { token, session } = await createSession(tx, userId, ctx.sessionPolicy, {
    userAgent: ctx.req.headers['user-agent'],
  });
  return { token, session, replaced: ctx.session };
}

/** After the transaction committed: the cookie, and the replaced session's sockets told to go. */
function finishSignIn(ctx: Context, { token, session, replaced }: Started) {
  if (replaced) ctx.sessionEvents.revoked(replaced.userId, [replaced.id]);
  setSessionCookie(ctx, token, session.expiresAt);
  return session.user;
}

/** Runs a password check; if it fails to run at all (the database is down), the counted attempt is given back. */
async function checkPassword<T>(ctx: Context, ticket: Ticket, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (error) {
    ctx.loginThrottle.release(ticket);
    throw error;
  }
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

  /**
   * A guest identity: its own session cookie, a UUID peer id and a display name. A session the request came with
   * (an account's, or another guest's) ends on the server: its cookie is about to be replaced, and a session
   * nobody holds any more must not stay usable by whoever copied it.
   */
  guest: publicProcedure
    .use(costly('guest'))
    .input(GuestInputSchema)
    .mutation(async ({ ctx, input }) => {
      const displayName = input.displayName ?? `Guest ${randomInt(1000, 10000)}`;
      const started = await ctx.db.$transaction(async (tx) => {
        const user = await tx.user.create({ data: { kind: 'GUEST', displayName }, select: { id: true } });
        return startSession(tx, ctx, user.id);
      });
      return finishSignIn(ctx, started);
    }),

  /** A new account; a signed-in guest keeps their user row (id, display name, rooms, history): it becomes the account. */
  signup: publicProcedure
    .use(costly('auth'))
    .input(SignupInputSchema)
    .mutation(async ({ ctx, input }) => {
      const passwordHash = await hashPassword(input.password);
      const guestId = ctx.session?.user.kind === 'GUEST' ? ctx.session.userId : null;
      const started = await ctx.db
        .$transaction(async (tx) => {
          if (guestId === null) {
            // Never the username: it is the login name, and display names are shown to everyone in a room.
            const displayName = input.displayName ?? `Member ${randomInt(1000, 10000)}`;
            const data = { kind: 'ACCOUNT', username: input.username, passwordHash, displayName } as const;
            const user = await tx.user.create({ data, select: { id: true } });
            return startSession(tx, ctx, user.id);
          }
          const { count } = await tx.user.updateMany({
            where: { id: guestId, kind: 'GUEST' },
            data: {
              kind: 'ACCOUNT',
              username: input.username,
              passwordHash,
              ...(input.displayName ? { displayName: input.displayName } : {}),
            },
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

  login: publicProcedure
    .use(costly('auth'))
    .input(LoginInputSchema)
    .mutation(async ({ ctx, input }) => {
      // Before any query: a refusal costs nothing, and is the same whether or not the username exists.
      const attempt = ctx.loginThrottle.begin(input.username, ctx.req.ip);
      if (!attempt.ok) throw tooManyRequests(ctx, attempt.retryAfterMs, attempt.message);
      const { user, matches } = await checkPassword(ctx, attempt.ticket, async () => {
        const user = await ctx.db.user.findUnique({
          where: { username: input.username },
          select: { id: true, passwordHash: true },
        });
        // Unknown users are verified against a dummy hash: the same work as a wrong password.
        return { user, matches: await verifyPassword(user?.passwordHash ?? null, input.password) };
      });
      if (!matches || !user) {
        ctx.loginThrottle.fail(attempt.ticket);
        throw new TRPCError({ code: 'UNAUTHORIZED', message: WRONG_CREDENTIALS });
      }
      ctx.loginThrottle.succeed(attempt.ticket);
      return finishSignIn(ctx, await ctx.db.$transaction((tx) => startSession(tx, ctx, user.id)));
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
  changePassword: authedProcedure
    .use(costly('auth'))
    .input(ChangePasswordInputSchema)
    .mutation(async ({ ctx, input }) => {
      const { session } = ctx;
      if (session.user.kind !== 'ACCOUNT')
        throw new TRPCError({ code: 'FORBIDDEN', message: 'Guests have no password: sign up first' });
      // Guessing the current password from a stolen session counts against the same limits as signing in.
      const attempt = ctx.loginThrottle.begin(session.user.username ?? '', ctx.req.ip);
      if (!attempt.ok) throw tooManyRequests(ctx, attempt.retryAfterMs, attempt.message);
      const matches = await checkPassword(ctx, attempt.ticket, async () => {
        const user = await ctx.db.user.findUniqueOrThrow({
          where: { id: session.userId },
          select: { passwordHash: true },
        });
        return verifyPassword(user.passwordHash, input.currentPassword);
      });
      if (!matches) {
        ctx.loginThrottle.fail(attempt.ticket);
        throw new TRPCError({ code: 'FORBIDDEN', message: 'The current password is wrong' });
      }
      ctx.loginThrottle.succeed(attempt.ticket);
      const passwordHash = await hashPassword(input.newPassword);
      const revoked = await ctx.db.$transaction(async (tx) => {
        await tx.user.update({ where: { id: session.userId }, data: { passwordHash }, select: { id: true } });
        return invalidateOtherSessions(tx, session.userId, session.id);
      });
      ctx.sessionEvents.revoked(session.userId, revoked);
      return { revokedSessions: revoked.length };
    }),
});
