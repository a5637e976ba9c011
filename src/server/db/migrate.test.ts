import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../../../tests/support/database.ts';
import { createPostgresDatabase } from '../../../tests/support/postgres.ts';
import { openDatabase, pgliteSession } from './client.ts';
import { type Migration, MigrationError, migrate, readMigrations } from './migrate.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const PRISMA_CLI = path.join(ROOT, 'node_modules/prisma/build/index.js');
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function freshTarget(kind: string): Promise<{ url?: string; pgliteDir?: string }> {
  if (kind === 'postgres') {
    const created = await createPostgresDatabase();
    cleanups.push(created.drop);
    return { url: created.url };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-migrate-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return { pgliteDir: path.join(dir, 'pglite') };
}

describe.each(databaseKinds())('migrations on %s', (kind) => {
  it('apply to an empty database, record themselves as Prisma does, and are a no-op the second time', async () => {
    const target = await freshTarget(kind);
    const files = await readMigrations();
    expect(files.length).toBeGreaterThanOrEqual(2);

    const first = await openDatabase(target);
    expect(first.migrations.applied).toEqual(files.map((file) => file.name));
    const recorded = await first.prisma.$queryRaw<
      { migration_name: string; checksum: string; finished_at: Date | null }[]
    >`
      SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" ORDER BY migration_name`;
    expect(recorded.map((row) => [row.migration_name, row.checksum])).toEqual(files.map((f) => [f.name, f.checksum]));
    expect(recorded.every((row) => row.finished_at instanceof Date)).toBe(true);
    const global = await first.prisma.room.findUnique({ where: { slug: 'global' }, select: { visibility: true } });
    expect(global).toEqual({ visibility: 'PUBLIC' });
    await first.close();

    const second = await openDatabase(target);
    expect(second.migrations).toEqual({ applied: [], modified: [] });
    expect(await second.prisma.room.count({ where: { slug: 'global' } })).toBe(1);
    await second.close();
  });
});

describe('the migrator', () => {
  const broken: Migration = {
    name: '29990101000000_broken',
    sql: 'CREATE TABLE "ok" (id int); SELECT nope FROM missing;',
    checksum: 'x'.repeat(64),
  };

  it('rolls back a failing migration completely and names it', async () => {
    const db = new PGlite();
    const session = pgliteSession(db);
    await expect(migrate(session, [broken])).rejects.toThrowError(/Migration 29990101000000_broken failed: .*missing/);
    await expect(migrate(session, [broken])).rejects.toBeInstanceOf(MigrationError);
    const tables = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'ok'`);
    expect(tables.rows[0]?.n).toBe(0);
    const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM "_prisma_migrations"');
    expect(rows.rows[0]?.n).toBe(0);
    await db.close();
  });

  it('reports a migration whose file changed after it was applied', async () => {
    const db = new PGlite();
    const session = pgliteSession(db);
    const one: Migration = { name: '1_one', sql: 'CREATE TABLE one (id int);', checksum: 'a'.repeat(64) };
    expect(await migrate(session, [one])).toEqual({ applied: ['1_one'], modified: [] });
    expect(await migrate(session, [{ ...one, checksum: 'b'.repeat(64) }])).toEqual({
      applied: [],
      modified: ['1_one'],
    });
    await db.close();
  });

  it('refuses to start over a migration that Prisma recorded as failed', async () => {
    const db = new PGlite();
    const session = pgliteSession(db);
    await migrate(session, []);
    await db.query(`INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES ('1', 'c', '0_half_done')`);
    await expect(migrate(session, [])).rejects.toThrowError(/0_half_done failed earlier/);
    await db.close();
  });

  it("agrees with Prisma's own `migrate deploy`: nothing is pending after the server migrated", async () => {
    const target = await freshTarget('pglite');
    await (await openDatabase(target)).close();
    // The CLI prints its verdict, then keeps running on PGlite's open handle: read the verdict, then stop it.
    const cli = spawn(process.execPath, [PRISMA_CLI, 'migrate', 'deploy'], {
      env: { ...process.env, PRISMA_PGLITE_DIR: target.pgliteDir },
      cwd: ROOT,
    });
    let output = '';
    const verdict = await new Promise<string>((resolve, reject) => {
      const collect = (chunk: Buffer) => {
        output += chunk.toString();
        const match = /No pending migrations to apply|have been applied|Error[\s\S]*/.exec(output);
        if (match) resolve(match[0]);
      };
      cli.stdout.on('data', collect);
      cli.stderr.on('data', collect);
      cli.on('exit', () => resolve(output));
      cli.on('error', reject);
    });
    cli.kill('SIGKILL');
    expect(verdict).toBe('No pending migrations to apply');
  }, 90_000);
});

describe.skipIf(!databaseKinds().includes('postgres'))('migrations on PostgreSQL under concurrency', () => {
  it('apply once when several nodes start together', async () => {
    const created = await createPostgresDatabase();
    cleanups.push(created.drop);
    const nodes = await Promise.all([1, 2, 3].map(() => openDatabase({ url: created.url, poolSize: 2 })));
    const applied = nodes.flatMap((node) => node.migrations.applied);
    expect(applied).toEqual((await readMigrations()).map((file) => file.name));
    await Promise.all(nodes.map((node) => node.close()));
    const client = new pg.Client({ connectionString: created.url });
    await client.connect();
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM "_prisma_migrations"');
    await client.end();
    expect(rows[0]?.n).toBe(applied.length);
  });
});
