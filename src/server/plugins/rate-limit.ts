import { setTimeout as sleep } from 'node:timers/promises';
import rateLimit from '@fastify/rate-limit';
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Env } from '../env.ts';
import { BURST_WINDOW_MS, burstPoints } from '../services/budgets.ts';
import { isServerPath } from './client.ts';

/** App files get their own, larger budget per IP: a room of people behind one address all load the app at once. */
const APP_FILE_FACTOR = 20;

/**
 * The bucket comes from the route the request matched, never from its raw URL: `/%61pi/trpc/...` is routed to the
 * API and must be counted there, not as an app file.
 */
export function rateLimitBucket(request: FastifyRequest): 'app' | 'api' {
  if (request.method !== 'GET' && request.method !== 'HEAD') return 'api';
  // Unmatched (the app's client-side routes, answered with its shell): the path as the router decoded it.
  const path = request.routeOptions.url ?? decodedPath(request.url);
  return path !== null && !isServerPath(path) ? 'app' : 'api';
}

function decodedPath(url: string): string | null {
  try {
    return decodeURIComponent(url.split('?')[0] ?? '/');
  } catch {
    return null;
  }
}

export interface RateLimitPluginOptions {
  env: Pick<Env, 'RATE_LIMIT_MAX' | 'RATE_LIMIT_WINDOW_MS' | 'RATE_LIMIT_DELAY_MS' | 'RATE_LIMIT_BURST_SECONDS'>;
}

/** A route's own ceiling (`config.rateLimit`), when it sets one with a fixed size. */
function ownCeiling(request: FastifyRequest): { max: number; timeWindow: number } | null {
  const own = (request.routeOptions.config as { rateLimit?: { max?: unknown; timeWindow?: unknown } | false })
    .rateLimit;
  return own && typeof own.max === 'number' && typeof own.timeWindow === 'number'
    ? { max: own.max, timeWindow: own.timeWindow }
    : null;
}

/**
 * A per-IP ceiling on every HTTP request; routes with their own needs (health, model files) set `config.rateLimit`.
 * The app's files count apart from the API, with 20 times the budget. tRPC calls are also counted one by one
 * (a batch is several calls) by the procedures' own budgets (src/server/services/budgets.ts).
 */
export const rateLimitPlugin = fp<RateLimitPluginOptions>(
  async (app, { env }) => {
    const windowMax = (request: FastifyRequest) =>
      rateLimitBucket(request) === 'app' ? APP_FILE_FACTOR * env.RATE_LIMIT_MAX : env.RATE_LIMIT_MAX;
    await app.register(rateLimit, {
      global: true,
      keyGenerator: (request) => `${rateLimitBucket(request)}:${request.ip}`,
      max: (request) => windowMax(request),
      timeWindow: env.RATE_LIMIT_WINDOW_MS,
      errorResponseBuilder: (_request, context) => ({
        statusCode: context.statusCode,
        error: 'RATE_LIMITED',
        message: `Too many requests; retry in ${Math.ceil(context.ttl / 1000)} s`,
      }),
    });
    // Every ceiling is also smoothed (RATE_LIMIT_BURST_SECONDS, as the procedures' budgets are): at most its burst in
    // any BURST_WINDOW_MS, checked before the window so a refused burst does not also spend the window. Its own
    // counters: @fastify/rate-limit runs one limit per request.
    const bursts = new Map<number, RateLimiterMemory>();
    const burst: onRequestHookHandler = async (request, reply) => {
      const own = ownCeiling(request);
      const ceiling = own ?? { max: windowMax(request), timeWindow: env.RATE_LIMIT_WINDOW_MS };
      const points = burstPoints(ceiling.max, ceiling.timeWindow / 1000, env.RATE_LIMIT_BURST_SECONDS);
      if (points === null) return;
      let limiter = bursts.get(points);
      if (!limiter)
        bursts.set(
          points,
          (limiter = new RateLimiterMemory({ keyPrefix: `burst${points}`, points, duration: BURST_WINDOW_MS / 1000 })),
        );
      const group = own ? request.routeOptions.url : rateLimitBucket(request);
      try {
        await limiter.consume(`${group}:${request.ip}`);
      } catch (refusal) {
        if (!(refusal instanceof RateLimiterRes)) throw refusal;
        const seconds = Math.max(1, Math.ceil(refusal.msBeforeNext / 1000));
        return reply
          .code(429)
          .header('retry-after', String(seconds))
          .send({
            statusCode: 429,
            error: 'RATE_LIMITED',
            message: `Too many requests at once (at most ${points} in any ${BURST_WINDOW_MS} ms); retry in ${seconds} s`,
          });
      }
    };
    app.addHook('onRoute', (route) => {
      if ((route.config as { rateLimit?: unknown } | undefined)?.rateLimit === false) return;
      route.onRequest = [
        burst,
        ...(route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]),
      ];
    });
    // A refusal is answered only after RATE_LIMIT_DELAY_MS: a client that keeps asking past its budget then makes
    // about one request per connection per delay, instead of as many as the server can refuse, so a flood from one
    // address cannot take the CPU everyone else needs. (Any 429: these ceilings and the procedures' budgets.)
    if (env.RATE_LIMIT_DELAY_MS > 0) {
      app.addHook('onSend', async (_request, reply, payload) => {
        if (reply.statusCode === 429) await sleep(env.RATE_LIMIT_DELAY_MS);
        return payload;
      });
    }
  },
  { name: 'rate-limit' },
);
