import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Env } from '../env.ts';
import { checkHealth, checkLiveness } from '../services/health.ts';
import type { BuildInfo } from '../version.ts';

/**
 * Readiness for load balancers, `GET /api/health` (and `/api/health/ready`): 200 when every dependency this node is
 * configured with answers (the database; Redis with REDIS_URL), else 503 with Retry-After, each dependency's state in
 * the body. Liveness for supervisors, `GET /api/health/live`: 200 whenever the process answers, whatever the
 * dependencies do (a restart would not bring them back). A readiness call probes, so it has a per-IP budget of its
 * own (a probe a second is far below it), apart from the API's.
 */
export const healthRoutes: FastifyPluginAsync<{
  build: BuildInfo;
  env: Pick<Env, 'RATE_LIMIT_MAX' | 'RATE_LIMIT_WINDOW_MS'>;
}> = async (app, { build, env }) => {
  const rateLimit = {
    max: env.RATE_LIMIT_MAX,
    timeWindow: env.RATE_LIMIT_WINDOW_MS,
    keyGenerator: (request: { ip: string }) => `health:${request.ip}`,
  };
  const ready = async (_request: unknown, reply: FastifyReply) => {
    const report = await checkHealth(app.dependencies, app.database.kind, build);
    if (report.status !== 'ok') {
      const retryAfter = Math.max(
        ...app.dependencies
          .all()
          .filter((dependency) => !dependency.up)
          .map((dependency) => dependency.retryAfterSeconds()),
        1,
      );
      void reply.header('retry-after', String(retryAfter));
    }
    return reply
      .code(report.status === 'ok' ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(report);
  };
  app.get('/api/health', { config: { rateLimit } }, ready);
  app.get('/api/health/ready', { config: { rateLimit } }, ready);
  app.get('/api/health/live', { config: { rateLimit } }, async (_request, reply) =>
    reply.header('cache-control', 'no-store').send(checkLiveness(build)),
  );
};
