// Runs the real server as a child process: its source (src/server/index.ts) through tsx, or, with `compiled`, the
// bundle that `npm start` and `npm run serve` run with plain node (scripts/start.mjs --no-build; build it first).
import { type ChildProcessByStdio, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  url: string;
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
}

export interface SpawnOptions {
  /** Run dist-server/index.js as `npm run serve` does instead of the sources. */
  compiled?: boolean;
}

export function spawnServer(
  env: Record<string, string>,
  options: SpawnOptions = {},
): {
  child: ChildProcessWithoutNullStreams;
  output: () => string;
  exited: Promise<number | string>;
} {
  const args = options.compiled ? ['scripts/start.mjs', '--no-build'] : ['--import', 'tsx', 'src/server/index.ts'];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    // Budgets unsmoothed, as in tests/support/env.ts: tests make guests and calls from 127.0.0.1 as fast as they can.
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      PORT: '0',
      RATE_LIMIT_BURST_SECONDS: '3600',
      // Tests and benchmarks run offline: no public STUN servers (the default) for browsers and peers to ask.
      ICE_SERVERS: '[]',
      ...env,
    },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return { child, output: () => output, exited };
}

/**
 * Starts the server and waits for its "listening" log line. A server that does not say so within `timeoutMs` is
 * killed (SIGKILL: one that has not started may not heed SIGTERM) and waited for before the start fails, so no server
 * is left running behind a failed test. It is the server's own process, with no children (tsx registers its loader in
 * the same process); it stays in the test runner's process group, so that Ctrl-C in the terminal reaches it, which
 * also means that its group is not one to kill.
 */
export async function startServer(
  env: Record<string, string>,
  timeoutMs = 60_000,
  options: SpawnOptions = {},
): Promise<ServerProcess> {
  const started = spawnServer(env, options);
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        started.child.kill('SIGKILL');
      }, timeoutMs);
      const check = () => {
        const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(started.output());
        if (match?.[1]) resolve(match[1]);
      };
      started.child.stdout.on('data', check);
      // Rejects once the process has gone, killed above or ended by itself.
      void started.exited.then((code) =>
        reject(
          new Error(
            timedOut
              ? `server (pid ${started.child.pid}) did not start in ${timeoutMs} ms, killed:\n${started.output()}`
              : `server exited (${code}) before listening:\n${started.output()}`,
          ),
        ),
      );
    });
    return { ...started, url };
  } finally {
    clearTimeout(timer);
  }
}

/** Signs in as a new guest on a running server; returns the session cookie once the write is acknowledged. */
export async function guestCookie(url: string, displayName?: string): Promise<string> {
  const response = await fetch(`${url}/api/trpc/auth.guest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(displayName === undefined ? {} : { displayName }),
  });
  if (response.status !== 200) throw new Error(`guest sign-in failed with ${response.status}`);
  return (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
}

/** Signs up a new account on a running server (server downloads need one); returns its session cookie. */
export async function signUpCookie(url: string, username: string): Promise<string> {
  const response = await fetch(`${url}/api/trpc/auth.signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: 'correct horse battery' }),
  });
  if (response.status !== 200) throw new Error(`sign-up failed with ${response.status}`);
  return (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
}

/** Starts the server-side download of catalogue model `id` and resolves once it is ready (throws if it fails). */
export async function downloadModel(url: string, cookie: string, id: string, timeoutMs = 600_000): Promise<void> {
  const input = JSON.stringify({ id });
  const started = await fetch(`${url}/api/trpc/models.download`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: input,
  });
  if (started.status !== 200) throw new Error(`models.download answered ${started.status}`);
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const response = await fetch(`${url}/api/trpc/models.status?input=${encodeURIComponent(input)}`);
    const status = ((await response.json()) as { result: { data: { phase: string; error: unknown } } }).result.data;
    if (status.phase === 'ready') return;
    if (status.phase === 'failed' || status.phase === 'cancelled')
      throw new Error(`download of ${id} ${status.phase}: ${JSON.stringify(status.error)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`download of ${id} not ready within ${timeoutMs} ms`);
}

/**
 * A headless peer in its own process, as `npm run peer` starts it (`node --import tsx src/peer/cli.ts`): one process
 * that gets a signal itself. tsx's own CLI would run the peer as its child and SIGKILL it when it does not confirm a
 * relayed SIGINT within 30 ms, so the peer would not leave its room cleanly (src/peer/cli.ts).
 */
export function spawnPeer(args: string[]): ChildProcessByStdio<null, Readable, null> {
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/peer/cli.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** A port free on 127.0.0.1 now, for a server that must come back on the same origin after a restart. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
