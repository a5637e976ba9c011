import { inject } from 'vitest';
import { type Database, openDatabase } from '../../src/server/db/client.ts';
import { migratedPgliteDump } from './pglite-dump.ts';
import { createPostgresDatabase } from './postgres.ts';

export type DatabaseKind = 'pglite' | 'postgres';

/** The database kinds this run covers: PGlite always, PostgreSQL when reachable (required in CI). */
export function databaseKinds(): DatabaseKind[] {
  return inject('postgres') ? ['pglite', 'postgres'] : ['pglite'];
}

export interface TestDatabase {
  database: Database;
  /** PostgreSQL URL of the fresh database (postgres kind only). */
  url?: string;
  cleanup(): Promise<void>;
}

/**
 * A fresh, migrated database: in-memory PGlite (started from a migrated copy, `migratedPgliteDump`), or a new
 * PostgreSQL database dropped on cleanup.
 */
export async function openTestDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  if (kind === 'pglite') {
    const database = await openDatabase({ pgliteDir: 'memory://', pgliteLoadDataDir: await migratedPgliteDump() });
    return { database, cleanup: () => database.close() };
  }
  const created = await createPostgresDatabase();
  const database = await openDatabase({ url: created.url, poolSize: 4 });
  return {
    database,
    url: created.url,
    async cleanup() {
      await database.close();
      await created.drop();
    },
  };
}
