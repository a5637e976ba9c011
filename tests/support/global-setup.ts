import type { TestProject } from 'vitest/node';
import { migratedPgliteDump } from './pglite-dump.ts';
import { POSTGRES_ADMIN_URL, dropStaleDatabases, postgresReachable } from './postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: boolean;
  }
}

/**
 * Decides once per run whether the PostgreSQL variants run; CI sets REQUIRE_POSTGRES=1 so they cannot skip. Makes the
 * migrated PGlite database the tests' in-memory databases start from, once, before any file starts.
 */
export default async function setup(project: TestProject) {
  const [reachable] = await Promise.all([postgresReachable(), migratedPgliteDump()]);
  if (!reachable && process.env.REQUIRE_POSTGRES === '1') {
    throw new Error(`REQUIRE_POSTGRES=1 but PostgreSQL at ${POSTGRES_ADMIN_URL} is not reachable`);
  }
  if (reachable) await dropStaleDatabases(6 * 60 * 60 * 1000);
  else console.warn(`PostgreSQL at ${POSTGRES_ADMIN_URL} is not reachable: running the PGlite variants only`);
  project.provide('postgres', reachable);
}
