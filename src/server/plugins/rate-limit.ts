import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { Env } from '../env.ts';

export interface RateLimitPluginOptions {
  env: Pick<Env, 'RATE_LIMIT_MAX' | 'RATE_LIMIT_WINDOW_MS'>;
}

/** A per-IP ceiling on every route; routes with their own needs (health, model files) set `config.rateLimit`. */
export const rateLimitPlugin = fp<RateLimitPluginOptions>(
  async (app, { env }) => {
    await app.register(rateLimit, {
      global: true,
      max: env.RATE_LIMIT_MAX,
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
