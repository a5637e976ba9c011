// PostgreSQL and Redis instances of a test's own, on ports of their own, for tests that stop and start them (outages):
// the machine's shared ones (5432, 6379) serve every other test file in parallel and are never touched here.
// Without the binaries these tests skip with the reason, unless REQUIRE_POSTGRES=1 / REQUIRE_REDIS=1 (CI).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { postgresReachable } from './postgres.ts';
import { freePort } from './server-process.ts';

const run = promisify(execFile);

/** How long a start or a stop may take before the helper gives up (an initdb on a busy 2-core machine: seconds). */
const START_TIMEOUT_MS = 30_000;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Why these tests cannot run here, or throws when the environment says they must (REQUIRE_POSTGRES / REQUIRE_REDIS). */
function unavailable(requiredBy: 'REQUIRE_POSTGRES' | 'REQUIRE_REDIS', reason: string): string {
  if (process.env[requiredBy] === '1') throw new Error(`${requiredBy}=1 but ${reason}`);
  return reason;
}

// --- PostgreSQL -------------------------------------------------------------------------------------------------

export interface ScratchPostgres {
  port: number;
  /** The `postgres` database of this cluster, superuser `postgres`, trust auth on 127.0.0.1 only. */
  url: string;
  start(): Promise<void>;
  /** `immediate` is a crash (no checkpoint; the next start replays the WAL), `fast` a clean shutdown. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  destroy(): Promise<void>;
}

async function postgresBin(): Promise<string | null> {
  const fromPath = ['/usr/local/bin', '/usr/bin'].find(
    (dir) => existsSync(path.join(dir, 'pg_ctl')) && existsSync(path.join(dir, 'initdb')),
  );
  if (fromPath) return fromPath;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? (await readdir(root)).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions
    .map((version) => path.join(root, version, 'bin'))
    .find((dir) => existsSync(path.join(dir, 'pg_ctl')));
  return found ?? null;
}

/**
 * A fresh PostgreSQL cluster (initdb) on a free port, started; or the reason it cannot be made here. PostgreSQL
 * refuses to run as root, so as root the cluster belongs to, and runs as, the `postgres` OS user.
 */
export async function scratchPostgres(): Promise<ScratchPostgres | string> {
  const bin = await postgresBin();
  if (!bin) return unavailable('REQUIRE_POSTGRES', 'PostgreSQL server binaries (initdb, pg_ctl) are not installed');
  const asRoot = userInfo().uid === 0;
  let owner: { uid: number; gid: number } | null = null;
  if (asRoot) {
    const ids = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]).catch(() => null);
    if (!ids)
      return unavailable('REQUIRE_POSTGRES', 'running as root and there is no `postgres` OS user to run PostgreSQL as');
    owner = { uid: Number(ids[0].stdout.trim()), gid: Number(ids[1].stdout.trim()) };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-pg-'));
  const data = path.join(dir, 'data');
  if (owner) await chown(dir, owner.uid, owner.gid);
  const pgRun = (tool: string, args: string[]) =>
    owner ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args);

  await pgRun('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const port = await freePort();
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  // fsync off: a stopped or crashed PostgreSQL process loses nothing the OS already holds (only a machine crash
  // would); synchronous_commit stays on, so an acknowledged commit is in the WAL before the client hears of it.
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off -c shared_buffers=16MB -c max_connections=40`;
  const answers = () => postgresReachable(url, 1000);
  const cluster: ScratchPostgres = {
    port,
    url,
    async start() {
      await pgRun('pg_ctl', [
        '-D',
        data,
        '-l',
        path.join(dir, 'log'),
        '-o',
        options,
        '-w',
        '-t',
        String(START_TIMEOUT_MS / 1000),
        'start',
      ]);
      await until(`PostgreSQL on ${port} did not answer`, answers);
    },
    async stop(mode = 'fast') {
      await pgRun('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
    },
    async destroy() {
      await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.start();
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
  return cluster;
}

// --- Redis ------------------------------------------------------------------------------------------------------

export interface ScratchRedis {
  port: number;
  url: string;
  /** Starts redis-server again on the same port (empty: it keeps nothing on disk, as after a crash without persistence). */
  start(): Promise<void>;
  /** Ends the process (SIGKILL: as abrupt as an outage gets) and waits until it has exited. */
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

function redisServerPath(): string | null {
  return (
    ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server'].find((file) =>
      existsSync(file),
    ) ?? null
  );
}

/** A redis-server of this test's own on a free port, started; or the reason it cannot be made here. */
export async function scratchRedis(): Promise<ScratchRedis | string> {
  const bin = redisServerPath();
  if (!bin) return unavailable('REQUIRE_REDIS', 'redis-server is not installed');
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const answers = async () => {
    const client = createClient({ url, socket: { connectTimeout: 1000, reconnectStrategy: false } });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      client.destroy();
    }
  };
  const server: ScratchRedis = {
    port,
    url,
    async start() {
      const started = spawn(
        bin,
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
        { stdio: 'ignore' },
      );
      child = started;
      exited = new Promise((resolve) => started.once('exit', () => resolve()));
      await until(`redis-server on ${port} did not answer`, answers);
    },
    async stop() {
      child?.kill('SIGKILL');
      await exited;
      child = null;
    },
    async destroy() {
      await server.stop();
    },
  };
  await server.start();
  return server;
}
