import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { Env } from '../env.ts';
import { isServerPath } from './client.ts';

/** The app's own files (the shell, hashed assets, icons): a page load and the service worker's precache fetch dozens. */
const isAppFile = (method: string, url: string) => (method === 'GET' || method === 'HEAD') && !isServerPath(url.split('?')[0] ?? '/');
/** App files get their own, larger budget per IP: a room of people behind one address all load the app at once. */
const APP_FILE_FACTOR = 20;

export interface RateLimitPluginOptions {
  env: Pick<Env, 'RATE_LIMIT_MAX' | 'RATE_LIMIT_WINDOW_MS'>;
}

/**
 * A per-IP ceiling on every route; routes with their own needs (health, model files) set `config.rateLimit`. The
 * app's files count apart from the API, with 20 times the budget.
 */
export const rateLimitPlugin = fp<RateLimitPluginOptions>(
  async (app, { env }) => {
    await app.register(rateLimit, {
      global: true,
      keyGenerator: (request) => `${isAppFile(request.method, request.url) ? 'app' : 'api'}:${request.ip}`,
      max: (_request, key) => (key.startsWith('app:') ? APP_FILE_FACTOR * env.RATE_LIMIT_MAX : env.RATE_LIMIT_MAX),
      timeWindow: env.RATE_LIMIT_WINDOW_MS,
      errorResponseBuilder: (_request, context) => ({
        statusCode: context.statusCode,
        error: 'RATE_LIMITED',
        message: `Too many requests; retry in ${Math.ceil(context.ttl / 1000)} s`,
      }),
    });
  },
  { name: 'rate-limit' },
);
