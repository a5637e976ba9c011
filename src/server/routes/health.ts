import type { FastifyPluginAsync } from 'fastify';
import type { Env } from '../env.ts';
import { checkHealth } from '../services/health.ts';
import type { BuildInfo } from '../version.ts';

/**
 * `GET /api/health` for load balancers: 200 when the database answers, 503 when it does not. Each call pings the
 * database, so it has a per-IP budget of its own (a probe a second is far below it), apart from the API's.
 */
export const healthRoutes: FastifyPluginAsync<{ build: BuildInfo; env: Pick<Env, 'RATE_LIMIT_MAX' | 'RATE_LIMIT_WINDOW_MS'> }> = async (app, { build, env }) => {
  const rateLimit = { max: env.RATE_LIMIT_MAX, timeWindow: env.RATE_LIMIT_WINDOW_MS, keyGenerator: (request: { ip: string }) => `health:${request.ip}` };
  app.get('/api/health', { config: { rateLimit } }, async (_request, reply) => {
    const report = await checkHealth(app.database, build);
    return reply
      .code(report.db === 'ok' ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(report);
  });
};
