// npm run db:migrate
// Applies pending migrations to the configured database (DATABASE_URL, or the PGlite under DATA_DIR) without
// starting the server: for deploys that migrate first. The server does the same on every start.
import path from 'node:path';
import { openDatabase } from '../src/server/db/client.ts';
import { EnvError, loadEnv, resolveDataDir } from '../src/server/env.ts';

try {
  const env = loadEnv();
  const database = await openDatabase({ url: env.DATABASE_URL, pgliteDir: path.join(resolveDataDir(env), 'pglite') });
  const { applied, modified } = database.migrations;
  await database.close();
  console.warn(applied.length ? `Applied: ${applied.join(', ')}` : 'No pending migrations.');
  if (modified.length) console.warn(`Changed on disk since applied: ${modified.join(', ')}`);
} catch (error) {
  console.error(error instanceof EnvError ? error.message : error);
  process.exit(1);
}
