// The one initTRPC of the server.
import { TRPCError, initTRPC } from '@trpc/server';
import { ZodError, z } from 'zod';
import { ProviderError } from '../providers/provider.ts';
import type { Context } from './context.ts';

const t = initTRPC.context<Context>().create({
  // Stacks never go on the wire; onError logs them.
  isDev: false,
  errorFormatter({ shape, error, ctx }) {
    // Internal messages can carry SQL, paths or upstream details: only development shows them (the original
    // is always logged in onError). Without a context (it failed to build) we cannot know, so hide.
    const reveal = ctx?.env.NODE_ENV === 'development' || ctx?.env.NODE_ENV === 'test';
    const hide = !reveal && error.code === 'INTERNAL_SERVER_ERROR';
    return {
      ...shape,
      message: hide ? 'Internal server error' : shape.message,
      data: {
        ...shape.data,
        zodError: error.cause instanceof ZodError ? z.flattenError(error.cause) : null,
        zodIssues:
          error.cause instanceof ZodError
            ? error.cause.issues.map((issue) => ({ path: issue.path.map(String), message: issue.message }))
            : null,
        // Chat failures: a code from the closed ProviderErrorCode set (and when to retry) for clients to act on.
        providerError: error.cause instanceof ProviderError ? error.cause.toData() : null,
      },
    };
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const publicProcedure = t.procedure;

/** Needs a session: an account or a guest. */
export const authedProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.session) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'Sign in or continue as a guest first' });
  return next({ ctx: { ...ctx, session: ctx.session } });
});

/** Needs an account, not a guest; `refusal` tells a guest what to do instead. */
export function accountProcedure(refusal: string) {
  return authedProcedure.use(({ ctx, next }) => {
    if (ctx.session.user.kind !== 'ACCOUNT') throw new TRPCError({ code: 'FORBIDDEN', message: refusal });
    return next();
  });
}
