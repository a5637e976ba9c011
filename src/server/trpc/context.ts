import { TRPCError } from '@trpc/server';
import type { CreateFastifyContextOptions } from '@trpc/server/adapters/fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Database, PrismaClient } from '../db/client.ts';
import type { Budgets } from '../services/budgets.ts';
import type { ChatRuntime } from '../providers/index.ts';
import { unavailability } from '../dependencies/dependency.ts';
import type { Dependencies } from '../plugins/dependencies.ts';
import type { Env } from '../env.ts';
import { LoginThrottle } from '../services/login-throttle.ts';
import type { PeerLookup } from '../services/jobs.ts';
import type { SessionEvents } from '../services/session-events.ts';
import { type SessionPolicy, type ValidSession, validateSessionToken } from '../services/session.ts';
import type { BuildInfo } from '../version.ts';
import { HOST_SESSION_COOKIE, SESSION_COOKIE } from '../../shared/session-cookie.ts';

export { SESSION_COOKIE } from '../../shared/session-cookie.ts';

/** The `__Host-` name behind an https public origin (src/shared/session-cookie.ts says why). */
export function sessionCookieName(env: Pick<Env, 'PUBLIC_ORIGIN'>): string {
  return env.PUBLIC_ORIGIN?.startsWith('https:') ? HOST_SESSION_COOKIE : SESSION_COOKIE;
}

const secureCookie = (ctx: Pick<Context, 'req' | 'env'>) =>
  ctx.req.protocol === 'https' || ctx.env.PUBLIC_ORIGIN?.startsWith('https:') === true;

export interface AppServices {
  env: Env;
  database: Database;
  sessionPolicy: SessionPolicy;
  build: BuildInfo;
  models: FastifyInstance['models'];
  /** Announces revoked sessions (logout, password change, login over an old session) to the socket layer. */
  sessionEvents: SessionEvents;
  /** Who is behind a peer id in a room (the signaling layer knows; mesh job records need it). */
  peers: PeerLookup;
  /** Per-IP and per-user budgets of calls and costly procedures. */
  budgets: Budgets;
  /** The chat providers and their stream slots (one per app). */
  chat: ChatRuntime;
  /** The database and Redis, up or down (the health report). */
  dependencies: Pick<Dependencies, 'database' | 'redis'>;
}

export interface Context extends AppServices {
  db: PrismaClient;
  req: FastifyRequest;
  res: FastifyReply;
  session: ValidSession | null;
  loginThrottle: LoginThrottle;
  /**
   * Aborted when this HTTP exchange ends: the client went away, or the response is complete. Use it rather than
   * (or as well as) tRPC's `signal`, which follows the `Request` object tRPC builds through undici's weak reference
   * and so stops firing once that object is garbage collected (nodejs/undici#3644): a long chat would keep its
   * provider request running after the client left.
   */
  exchangeEnded: AbortSignal;
}

export function makeCreateContext(services: AppServices) {
  // One per app: it holds the in-memory part of the throttle (see login-throttle.ts).
  const loginThrottle = new LoginThrottle({
    maxFailures: services.env.LOGIN_MAX_FAILURES,
    lockoutMs: services.env.LOGIN_LOCKOUT_SECONDS * 1000,
  });
  return async ({ req, res }: CreateFastifyContextOptions): Promise<Context> => {
    const token = req.cookies[sessionCookieName(services.env)];
    const session = token
      ? await validateSessionToken(services.database.prisma, token, services.sessionPolicy).catch(unavailableSession)
      : null;
    const ended = new AbortController();
    // The listener holds the controller for as long as the response exists; nothing here is weakly held.
    res.raw.once('close', () => ended.abort(new Error('The client went away or the response ended')));
    return { ...services, db: services.database.prisma, req, res, session, loginThrottle, exchangeEnded: ended.signal };
  };
}

/**
 * A session that cannot be checked because the database is down fails the call as retryable: answering as if there
 * were no session would tell a signed-in client it was signed out.
 */
function unavailableSession(error: unknown): never {
  const unavailable = unavailability(error);
  if (unavailable)
    throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: unavailable.message, cause: unavailable });
  throw error;
}

/** `HttpOnly; SameSite=Lax; Path=/`, no Domain, `Secure` whenever the request arrived over https or the public origin is https. */
export function setSessionCookie(ctx: Pick<Context, 'req' | 'res' | 'env'>, token: string, expiresAt: Date): void {
  ctx.res.setCookie(sessionCookieName(ctx.env), token, {
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: secureCookie(ctx),
    expires: expiresAt,
  });
}

export function clearSessionCookie(ctx: Pick<Context, 'req' | 'res' | 'env'>): void {
  ctx.res.clearCookie(sessionCookieName(ctx.env), {
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: secureCookie(ctx),
  });
}
