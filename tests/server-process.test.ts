// The real server process: durability across SIGTERM and SIGKILL, and start-up refusing bad config (and the test
// support's start giving up on a server that is too slow, which it kills).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './support/database.ts';
import { createPostgresDatabase } from './support/postgres.ts';
import { type ServerProcess, guestCookie, spawnServer, startServer } from './support/server-process.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function freshConfig(kind: string): Promise<Record<string, string>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-server-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // The burst tests make guests as fast as the server takes them, all from 127.0.0.1.
  const config: Record<string, string> = {
    DATA_DIR: dir,
    CLIENT_DIST_DIR: path.join(dir, 'no-client'),
    GUEST_CREATIONS_PER_IP_PER_HOUR: '100000',
  };
  if (kind === 'postgres') {
    const created = await createPostgresDatabase();
    cleanups.push(created.drop);
    config.DATABASE_URL = created.url;
  }
  return config;
}

/** Creates a guest (one User row and one Session row) and returns its session cookie once acknowledged. */
const writeGuest = (server: ServerProcess, displayName: string) => guestCookie(server.url, displayName);

async function whoIs(server: ServerProcess, cookie: string): Promise<string | null> {
  const response = await fetch(`${server.url}/api/trpc/auth.me`, { headers: { cookie } });
  const body = (await response.json()) as { result: { data: { displayName: string } | null } };
  return body.result.data?.displayName ?? null;
}

/**
 * A test that starts the server twice: startServer allows each start a minute (a busy machine's start, beside the
 * browser tests), so the test's limit covers both, not Vitest's default 30 s (which two slow starts passed in a
 * whole-suite run).
 */
const TWO_STARTS_MS = 150_000;

describe.each(databaseKinds())('the server process on %s', (kind) => {
  it(
    'keeps a row written before SIGTERM, and exits cleanly',
    async () => {
      const config = await freshConfig(kind);
      const first = await startServer(config);
      const cookie = await writeGuest(first, 'Before SIGTERM');
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(first.output()).toMatch(/database closed/);

      const second = await startServer(config);
      expect(await whoIs(second, cookie)).toBe('Before SIGTERM');
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    },
    TWO_STARTS_MS,
  );

  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'loses no acknowledged write when sent %s during a burst of writes',
    async (signal) => {
      const config = await freshConfig(kind);
      const first = await startServer(config);
      const acknowledged: [string, string][] = [];
      // Four writers keep writing; the signal lands while requests are in flight.
      const writers = [0, 1, 2, 3].map(async (writer) => {
        for (let i = 0; ; i++) {
          const name = `w${writer}-${i}`;
          try {
            acknowledged.push([name, await writeGuest(first, name)]);
          } catch {
            return;
          }
        }
      });
      while (acknowledged.length < 20) await new Promise((resolve) => setTimeout(resolve, 10));
      first.child.kill(signal);
      await Promise.all(writers);
      expect(await first.exited, first.output().slice(-3000)).toBe(signal === 'SIGTERM' ? 0 : 'SIGKILL');

      const second = await startServer(config);
      const found = await Promise.all(acknowledged.map(([, cookie]) => whoIs(second, cookie)));
      expect(found).toEqual(acknowledged.map(([name]) => name));
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    },
    TWO_STARTS_MS,
  );
});

describe('start-up', () => {
  it('kills a server that does not say it listens in time (the test support), leaving none running', async () => {
    const config = await freshConfig('pglite');
    const failed = await startServer(config, 200).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(Error);
    const pid = Number(/^server \(pid (\d+)\) did not start in 200 ms, killed/.exec((failed as Error).message)?.[1]);
    expect(pid).toBeGreaterThan(0);
    // Gone, not only signalled: the start fails once the process has exited.
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('exits non-zero with one line naming PORT when PORT=abc', async () => {
    const config = await freshConfig('pglite');
    const server = spawnServer({ ...config, PORT: 'abc' });
    expect(await server.exited).toBe(1);
    expect(server.output().trim()).toBe('Invalid environment variable PORT="abc": expected an integer from 0 to 65535');
  });

  it('exits non-zero with one line naming MANIFEST_PATH when the catalogue file is bad', async () => {
    const config = await freshConfig('pglite');
    const server = spawnServer({ ...config, MANIFEST_PATH: path.join(config.DATA_DIR ?? '', 'absent.json') });
    expect(await server.exited).toBe(1);
    expect(server.output().trim()).toMatch(/^Invalid MANIFEST_PATH .*absent\.json: ENOENT/);
  });

  it('refuses a second server on the same DATA_DIR while the first runs', async () => {
    const config = await freshConfig('pglite');
    const first = await startServer(config);
    const second = spawnServer(config);
    expect(await second.exited).not.toBe(0);
    expect(second.output()).toMatch(/in use by process \d+/);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  });
});
