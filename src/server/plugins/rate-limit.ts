import { setTimeout as sleep } from 'node:timers/promises';
import rateLimit from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Env } from '../env.ts';
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
  env: Pick<Env, 'RATE_LIMIT_MAX' | 'RATE_LIMIT_WINDOW_MS' | 'RATE_LIMIT_DELAY_MS'>;
}

/**
 * A per-IP ceiling on every HTTP request; routes with their own needs (health, model files) set `config.rateLimit`.
 * The app's files count apart from the API, with 20 times the budget. tRPC calls are also counted one by one
 * (a batch is several calls) by the procedures' own budgets (src/server/services/budgets.ts).
 */
export const rateLimitPlugin = fp<RateLimitPluginOptions>(
  async (app, { env }) => {
    await app.register(rateLimit, {
      global: true,
      keyGenerator: (request) => `${rateLimitBucket(request)}:${request.ip}`,
      max: (_request, key) => (key.startsWith('app:') ? APP_FILE_FACTOR * env.RATE_LIMIT_MAX : env.RATE_LIMIT_MAX),
      timeWindow: env.RATE_LIMIT_WINDOW_MS,
      errorResponseBuilder: (_request, context) => ({
        statusCode: context.statusCode,
        error: 'RATE_LIMITED',
        message: `Too many requests; retry in ${Math.ceil(context.ttl / 1000)} s`,
      }),
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
