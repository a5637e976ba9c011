// A migrated PGlite database as a file, to start each test's fresh in-memory database from (tests/support/database.ts).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pgliteSession } from '../../src/server/db/client.ts';
import { migrate, readMigrations } from '../../src/server/db/migrate.ts';
import { ROOT } from './server-process.ts';

let dump: Promise<Blob> | undefined;

/**
 * The data directory of an in-memory PGlite database with every migration applied, as PGlite dumps it: a new one
 * started from it skips initdb and the migrations, several times faster than one made empty and migrated (most test
 * files open one per test). Kept in the system's temporary folder under a hash of PGlite's version and the
 * migrations, so a run makes it once: the global set-up makes it (tests/support/global-setup.ts) before any file starts, where
 * it counts against no test's time limit.
 */
export function migratedPgliteDump(): Promise<Blob> {
  dump ??= (async () => {
    const migrations = await readMigrations();
    const { version } = JSON.parse(
      await readFile(path.join(ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8'),
    ) as { version: string };
    const key = createHash('sha256')
      .update(version)
      .update(JSON.stringify(migrations.map(({ name, checksum }) => [name, checksum])))
      .digest('hex')
      .slice(0, 24);
    const file = path.join(tmpdir(), 'mesh-test-pglite', `${key}.tar`);
    const kept = await readFile(file).catch(() => null);
    if (kept) return new Blob([kept]);
    const { PGlite } = await import('@electric-sql/pglite');
    const client = await PGlite.create('memory://');
    try {
      await migrate(pgliteSession(client), migrations);
      const made = await client.dumpDataDir('none');
      await mkdir(path.dirname(file), { recursive: true });
      const staging = `${file}.${process.pid}`;
      await writeFile(staging, Buffer.from(await made.arrayBuffer()));
      await rename(staging, file);
      return made;
    } finally {
      await client.close();
    }
  })();
  return dump;
}
