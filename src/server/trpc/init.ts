// The one initTRPC of the server.
import { TRPCError, type TRPC_ERROR_CODE_KEY, initTRPC } from '@trpc/server';
import { ZodError, z } from 'zod';
import { unavailability } from '../dependencies/dependency.ts';
import { ProviderError } from '../providers/provider.ts';
import type { BudgetName } from '../services/budgets.ts';
import { type RefusalKind, ServiceError } from '../services/errors.ts';
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
        // SERVICE_UNAVAILABLE: which dependency is down and when to try again (also the response's Retry-After).
        unavailable: unavailableData(error),
        // A refusal that names the check that failed (models.add).
        check: error.cause instanceof ServiceError ? (error.cause.check ?? null) : null,
      },
    };
  },
});

function unavailableData(error: TRPCError) {
  const unavailable = error.code === 'SERVICE_UNAVAILABLE' ? unavailability(error) : null;
  return unavailable ? { dependency: unavailable.dependency, retryAfterSeconds: unavailable.retryAfterSeconds } : null;
}

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** TOO_MANY_REQUESTS with a `Retry-After` header (shared by a batch's calls: the longest wait wins). */
export function tooManyRequests(ctx: Pick<Context, 'res'>, retryAfterMs: number, message: string): TRPCError {
  const seconds = Math.ceil(retryAfterMs / 1000);
  const previous = Number(ctx.res.getHeader('retry-after') ?? 0);
  void ctx.res.header('retry-after', String(Math.max(seconds, previous)));
  return new TRPCError({ code: 'TOO_MANY_REQUESTS', message });
}

/** Spends one point of a budget for this request's IP (and user, when signed in), or refuses the call. */
async function spend(ctx: Context, name: BudgetName): Promise<void> {
  const result = await ctx.budgets.spend(name, { ip: ctx.req.ip, userId: ctx.session?.userId });
  if (!result.ok) throw tooManyRequests(ctx, result.retryAfterMs, result.message);
}

/**
 * A call that failed because a dependency is down (the database, Redis) is SERVICE_UNAVAILABLE (503 with
 * Retry-After): retryable, where INTERNAL_SERVER_ERROR would tell a client nothing it can act on.
 */
const unavailableAsServiceUnavailable = t.middleware(async ({ next }) => {
  const result = await next();
  if (result.ok || result.error.code === 'SERVICE_UNAVAILABLE') return result;
  const unavailable = unavailability(result.error);
  if (unavailable)
    throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: unavailable.message, cause: unavailable });
  return result;
});

const TRPC_CODE_OF: Record<RefusalKind, TRPC_ERROR_CODE_KEY> = {
  NOT_FOUND: 'NOT_FOUND',
  FORBIDDEN: 'FORBIDDEN',
  CONFLICT: 'CONFLICT',
  INVALID: 'BAD_REQUEST',
  TOO_MANY: 'TOO_MANY_REQUESTS',
  TOO_LARGE: 'PAYLOAD_TOO_LARGE',
};

/** A service's refusal (services/errors.ts) becomes the tRPC error of its kind, with the service's message. */
const refusalsAsTRPCErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof ServiceError) {
    const refusal = result.error.cause;
    throw new TRPCError({ code: TRPC_CODE_OF[refusal.kind], message: refusal.message, cause: refusal });
  }
  return result;
});

/** Every call counts against the per-IP API budget, one by one: a batch of ten is ten calls, not one request. */
export const publicProcedure = t.procedure
  .use(unavailableAsServiceUnavailable)
  .use(refusalsAsTRPCErrors)
  .use(async ({ ctx, next }) => {
    await spend(ctx, 'call');
    return next();
  });

/** A procedure that costs the server real work, money or disk: it also spends its own per-IP and per-user budget. */
export function costly(name: Exclude<BudgetName, 'call'>) {
  return t.middleware(async ({ ctx, next }) => {
    await spend(ctx, name);
    return next();
  });
}

/** Needs a session: an account or a guest. */
export const authedProcedure = publicProcedure.use(({ ctx, next }) => {
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
