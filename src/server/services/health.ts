import type { Database } from '../db/client.ts';
import type { Dependency } from '../dependencies/dependency.ts';
import type { BuildInfo } from '../version.ts';

export interface DependencyReport {
  state: 'up' | 'down';
  /** When it entered this state (ISO 8601). */
  since: string;
}

export interface HealthReport {
  /** `ok` when every dependency is up: this node can serve. */
  status: 'ok' | 'error';
  db: 'ok' | 'down';
  database: Database['kind'];
  /** Only when REDIS_URL is set. */
  redis?: 'ok' | 'down';
  dependencies: { database: DependencyReport & { kind: Database['kind'] }; redis?: DependencyReport };
  uptimeSeconds: number;
  version: string;
  commit: string | null;
}

const report = (dependency: Dependency): DependencyReport => {
  const { state, since } = dependency.status();
  return { state, since: since.toISOString() };
};

/**
 * Readiness: probes every dependency now (a probe under way is shared, so a busy balancer costs one probe at a time).
 * `build.commit` is reported only when the operator asks for it (HEALTH_SHOW_COMMIT): strangers learn no deploy detail.
 */
export async function checkHealth(
  dependencies: { database: Dependency; redis: Dependency | null },
  kind: Database['kind'],
  build: BuildInfo,
): Promise<HealthReport> {
  const { database, redis } = dependencies;
  await Promise.all([database.check(), redis?.check()]);
  const ok = database.up && (redis?.up ?? true);
  return {
    status: ok ? 'ok' : 'error',
    db: database.up ? 'ok' : 'down',
    database: kind,
    ...(redis ? { redis: redis.up ? ('ok' as const) : ('down' as const) } : {}),
    dependencies: { database: { kind, ...report(database) }, ...(redis ? { redis: report(redis) } : {}) },
    uptimeSeconds: Math.round(process.uptime()),
    version: build.version,
    commit: build.commit,
  };
}

/** Liveness: the process answers. No dependency is asked: a supervisor must not restart a node because the database blinked. */
export function checkLiveness(build: BuildInfo) {
  return { status: 'ok' as const, uptimeSeconds: Math.round(process.uptime()), version: build.version };
}
