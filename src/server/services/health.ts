import type { Database } from '../db/client.ts';
import type { BuildInfo } from '../version.ts';

export interface HealthReport {
  status: 'ok' | 'error';
  db: 'ok' | 'down';
  database: Database['kind'];
  uptimeSeconds: number;
  version: string;
  commit: string | null;
}

/** `build.commit` is reported only when the operator asks for it (HEALTH_SHOW_COMMIT): strangers learn no deploy detail. */
export async function checkHealth(database: Database, build: BuildInfo): Promise<HealthReport> {
  let db: HealthReport['db'] = 'ok';
  try {
    await database.ping();
  } catch {
    db = 'down';
  }
  return {
    status: db === 'ok' ? 'ok' : 'error',
    db,
    database: database.kind,
    uptimeSeconds: Math.round(process.uptime()),
    version: build.version,
    commit: build.commit,
  };
}
