// The one place a Prisma client is made. Embedded default: PGlite (Postgres in WASM) in-process, under
// DATA_DIR. At scale: PostgreSQL via DATABASE_URL. Migrations are applied before the client is handed out.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type pg from 'pg';
import { Dependency } from '../dependencies/dependency.ts';
import { gatedAdapter } from '../dependencies/database.ts';
import { PrismaClient } from './generated/client.ts';
import { migrate, readMigrations, type MigrateResult, type SqlSession } from './migrate.ts';

export type { PrismaClient } from './generated/client.ts';
import type { Prisma } from './generated/client.ts';

/** A client or the client inside `$transaction`: what services take as their first argument. */
export type Db = PrismaClient | Prisma.TransactionClient;

export interface DatabaseOptions {
  /** PostgreSQL URL; when absent an embedded PGlite database is used. */
  url?: string | undefined;
  /** Directory for the PGlite data (ignored with `url`); `memory://` keeps it in memory (tests). */
  pgliteDir?: string;
  /** PGlite's `-c name=value` settings; default PGLITE_SETTINGS (bench/pglite.ts compares others). */
  pgliteSettings?: string[];
  /**
   * A new PGlite database (in memory, or a directory not made yet) starts as a copy of this dump of another's data
   * directory (PGlite's `dumpDataDir`) rather than empty; migrations then apply only what the copy lacks. Starting
   * from a dump skips initdb: the tests start each fresh in-memory database from one already migrated.
   */
  pgliteLoadDataDir?: Blob;
  poolSize?: number;
}

export interface Database {
  readonly kind: 'pglite' | 'postgres';
  readonly prisma: PrismaClient;
  readonly migrations: MigrateResult;
  /** Up or down, probed while down; queries are refused at once while it is down (src/server/dependencies/). */
  readonly availability: Dependency;
  close(): Promise<void>;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const migrations = await readMigrations();
  return options.url
    ? openPostgres(options.url, options.poolSize ?? 10, migrations)
    : openPglite(options.pgliteDir, options.pgliteSettings ?? PGLITE_SETTINGS, migrations, options.pgliteLoadDataDir);
}

/**
 * PGlite starts with a server's settings, sized for many connections: 128 MB of shared buffers, which it touches
 * (resident from the start), and shared memory for 100 connections. Here one process holds its only connection,
 * and the database is small (accounts, rooms, job records): 16 MB of buffers and a handful of connection slots
 * cut the server's resident memory by about 120 MiB at no measurable cost in queries per second (bench/README.md,
 * "A lean server"). WebAssembly memory cannot start below 128 MiB (the module's minimum), but pages never touched
 * are not resident, so `initialMemory` is left alone.
 */
export const PGLITE_SETTINGS = ['shared_buffers=16MB', 'max_connections=5'];

async function openPglite(
  dir: string | undefined,
  settings: string[],
  migrations: Awaited<ReturnType<typeof readMigrations>>,
  loadDataDir?: Blob,
) {
  const location = dir ?? 'memory://';
  const releaseLock = location.startsWith('memory://') ? async () => {} : await lockDataDir(path.resolve(location));
  // Each driver is loaded only when used: a server on PostgreSQL never loads PGlite, one on PGlite never pg.
  const [{ PGlite }, { PrismaPGlite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('pglite-prisma-adapter'),
  ]);
  let client: PGlite | undefined;
  let result: MigrateResult;
  try {
    client = await PGlite.create(location, {
      startParams: [...PGlite.defaultStartParams, ...settings.flatMap((setting) => ['-c', setting])],
      ...(loadDataDir ? { loadDataDir } : {}),
    });
    result = await migrate(pgliteSession(client), migrations);
  } catch (error) {
    await client?.close();
    await releaseLock();
    throw error;
  }
  const pglite = client;
  // In-process: it is down only once closed.
  const availability = new Dependency('database', {
    probe: async () => {
      if (pglite.closed) throw new Error('PGlite is closed');
      await pglite.query('SELECT 1');
    },
  });
  const prisma = new PrismaClient({ adapter: gatedAdapter(new PrismaPGlite(client), availability) });
  return makeDatabase('pglite', prisma, result, availability, async () => {
    await prisma.$disconnect();
    // close() checkpoints, so the next start opens cleanly without WAL replay.
    if (!client.closed) await client.close();
    await releaseLock();
  });
}

async function openPostgres(url: string, poolSize: number, migrations: Awaited<ReturnType<typeof readMigrations>>) {
  const [{ default: pg }, { PrismaPg }] = await Promise.all([import('pg'), import('@prisma/adapter-pg')]);
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5000 });
  // Probed on a connection of its own: a pool busy with slow queries is not a database that went away.
  const availability = new Dependency('database', {
    probe: async (timeoutMs) => {
      const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
      probe.on('error', () => {});
      try {
        await probe.connect();
        await probe.query('SELECT 1');
      } finally {
        await probe.end().catch(() => {});
      }
    },
  });
  // An idle client that loses its connection must not crash the process: the pool replaces it. It may be the first
  // sign that the server went away (PostgreSQL ends every connection when it stops).
  pool.on('error', () => availability.suspect());
  let result: MigrateResult;
  try {
    const connection = await pool.connect();
    try {
      result = await migrate(pgSession(connection), migrations);
    } finally {
      connection.release();
    }
  } catch (error) {
    await pool.end();
    throw error;
  }
  const prisma = new PrismaClient({ adapter: gatedAdapter(new PrismaPg(pool), availability) });
  return makeDatabase('postgres', prisma, result, availability, async () => {
    await prisma.$disconnect();
    if (!pool.ended) await pool.end();
  });
}

/**
 * PGlite is one process's database: a second server on the same directory would corrupt it. A lock file with
 * the owner's pid refuses a second opener; a lock left by a process that died (SIGKILL) is taken over.
 */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const lockPath = `${dir}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockPath, String(process.pid), { flag: 'wx' });
      return async () => rm(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new Error(`The database in ${dir} is in use by process ${owner}; stop it or choose another DATA_DIR`, {
          cause: error,
        });
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new Error(`Could not lock ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function makeDatabase(
  kind: Database['kind'],
  prisma: PrismaClient,
  migrations: MigrateResult,
  availability: Dependency,
  closeDriver: () => Promise<void>,
): Database {
  let closing: Promise<void> | undefined;
  return {
    kind,
    prisma,
    migrations,
    availability,
    close() {
      availability.close();
      closing ??= closeDriver();
      return closing;
    },
  };
}

export function pgliteSession(client: PGlite): SqlSession {
  return {
    async exec(sql) {
      await client.exec(sql);
    },
    async query<Row>(sql: string, params?: unknown[]) {
      return (await client.query<Row>(sql, params)).rows;
    },
  };
}

function pgSession(client: pg.PoolClient): SqlSession {
  return {
    async exec(sql) {
      await client.query(sql);
    },
    async query<Row>(sql: string, params?: unknown[]) {
      return (await client.query(sql, params)).rows as Row[];
    },
  };
}
