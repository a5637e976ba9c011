import type { FastifyPluginAsync } from 'fastify';
import { checkHealth } from '../services/health.ts';
import type { BuildInfo } from '../version.ts';

/** `GET /api/health` for load balancers: 200 when the database answers, 503 when it does not. */
export const healthRoutes: FastifyPluginAsync<{ build: BuildInfo }> = async (app, { build }) => {
  app.get('/api/health', { config: { rateLimit: false } }, async (_request, reply) => {
    const report = await checkHealth(app.database, build);
    return reply
      .code(report.db === 'ok' ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(report);
  });
};
