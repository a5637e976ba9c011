import { randomInt } from 'node:crypto';
import { GuestInputSchema } from '../../../shared/schemas/auth.ts';
import { createSession, sessionUserSelect } from '../../services/session.ts';
import { setSessionCookie } from '../context.ts';
import { publicProcedure, router } from '../init.ts';

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
});
