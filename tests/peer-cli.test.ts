// `npm run peer` as a real process against a real server: it signs in as a guest, loads the bundled model through
// the proxy, joins the room and shares, prints its status, and leaves cleanly on SIGINT; bad arguments and an
// unknown model end it with a clear message and a non-zero code.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Socket, io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ack, ClientToServerEvents, PeerInfo, ServerToClientEvents } from '../src/shared/socket-contract.ts';
import { ROOT, type ServerProcess, guestCookie, startServer } from './support/server-process.ts';

let dir: string;
let server: ServerProcess;

// The server's start may take two minutes on a loaded machine (tsx compiles it), as the browser files allow
// (tests/support/app-server.ts); the hook waits longer than the start, so a start that fails says why and leaves no
// server behind (startServer kills it), rather than the hook timing out first with the server still starting.
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-peer-cli-'));
  server = await startServer({ DATA_DIR: path.join(dir, 'data'), CLIENT_DIST_DIR: path.join(dir, 'none') }, 120_000);
}, 150_000);

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
  await rm(dir, { recursive: true, force: true });
});

/** The peer as `npm run peer` runs it: `node --import tsx src/peer/cli.ts`, one process that the test signals. */
function peer(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/peer/cli.ts'), ...args], {
    cwd: ROOT,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // `out` carries stderr too after a marker, so a failed expectation shows why the peer did not get there.
  return { child, exited, out: () => (stderr ? `${stdout}\n[stderr] ${stderr}` : stdout), err: () => stderr };
}

describe('npm run peer', () => {
  it('joins the room, shares the model, shows its status and leaves cleanly on SIGINT', async () => {
    const watcherCookie = await guestCookie(server.url, 'Watcher');
    const watcher: Socket<ServerToClientEvents, ClientToServerEvents> = io(`${server.url}/mesh`, {
      transports: ['websocket'],
      extraHeaders: { cookie: watcherCookie },
    });
    const joined = (await watcher.emitWithAck('room:join', { room: 'global' })) as Ack<{ peers: PeerInfo[] }>;
    expect(joined.ok).toBe(true);
    const seen: PeerInfo[] = [];
    const left: string[] = [];
    watcher.on('peer:joined', ({ peer: info }) => seen.push(info));
    watcher.on('peer:updated', ({ peer: info }) => seen.push(info));
    watcher.on('peer:left', ({ peerId }) => left.push(peerId));

    const run = peer([
      '--server',
      server.url,
      '--room',
      'global',
      '--model',
      'nano-shakespeare',
      '--name',
      'Box',
      '--cache-dir',
      path.join(dir, 'cache'),
    ]);
    // Its start (tsx, transformers.js, ONNX Runtime, the model) takes tens of seconds on a loaded machine.
    await expect
      .poll(() => run.out(), { timeout: 90_000 })
      .toMatch(/Box shares Nano Shakespeare \(demo\) \(cpu\) in room global/);
    await expect
      .poll(() => run.out(), { timeout: 10_000 })
      .toMatch(/Box in global: \d+ peers · 0 jobs served · 0 running · — tok\/s/);
    // The room hears of it, sharing the model, through the server's presence.
    await expect
      .poll(
        () =>
          seen.some(
            (info) =>
              info.displayName === 'Box' &&
              info.capabilities.sharing &&
              info.capabilities.models[0]?.id === 'nano-shakespeare',
          ),
        { timeout: 10_000 },
      )
      .toBe(true);

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.out()).toMatch(/SIGINT: leaving the room/);
    const box = seen.find((info) => info.displayName === 'Box');
    await expect.poll(() => left.includes(box?.peerId ?? '')).toBe(true);
    watcher.disconnect();
  }, 150_000);

  it('ends with usage and code 2 on bad arguments, and with a clear message and code 1 on an unknown model', async () => {
    const missing = peer(['--server', server.url]);
    expect(await missing.exited).toBe(2);
    expect(missing.err()).toMatch(/--server, --room and --model are required[\s\S]*Usage: npm run peer/);
    const badUrl = peer(['--server', 'ftp://x', '--room', 'global', '--model', 'm']);
    expect(await badUrl.exited).toBe(2);
    expect(badUrl.err()).toMatch(/--server must be an http\(s\) URL/);
    const unknown = peer([
      '--server',
      server.url,
      '--room',
      'global',
      '--model',
      'no-such-model',
      '--cache-dir',
      path.join(dir, 'cache'),
    ]);
    expect(await unknown.exited).toBe(1);
    expect(unknown.err()).toMatch(/The server's catalogue has no model no-such-model/);
  }, 90_000);

  it('ends with usage and code 2 on a bad --stage, or a --stage-dir without --stage', async () => {
    const base = ['--server', server.url, '--room', 'global', '--model', 'm'];
    const [reversed, nostage] = [peer([...base, '--stage', '3-1']), peer([...base, '--stage-dir', dir])];
    expect(await reversed.exited).toBe(2);
    expect(reversed.err()).toMatch(/--stage must be FROM-TO \(layers, FROM below TO, e\.g\. 0-2\) or auto, not 3-1/);
    expect(await nostage.exited).toBe(2);
    expect(nostage.err()).toMatch(
      /--stage-dir is for a stage peer: give --stage too[\s\S]*--stage-dir {2}a model directory/,
    );
  }, 90_000);

  it("joins a custom room with an account's session token", async () => {
    const signup = await fetch(`${server.url}/api/trpc/auth.signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // The peer goes by the account's display name (a username is private, never shown).
      body: JSON.stringify({ username: 'box-owner', password: 'correct horse battery', displayName: 'Box Owner' }),
    });
    expect(signup.status).toBe(200);
    const cookie = (signup.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const token = cookie.slice('mesh_session='.length);
    const created = await fetch(`${server.url}/api/trpc/room.create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: JSON.stringify({ name: 'Workshop', visibility: 'PUBLIC', capacity: 4 }),
    });
    const slug = ((await created.json()) as { result: { data: { slug: string } } }).result.data.slug;
    // `--token=`: a token may start with "-" (base64url), which would read as another option after a space.
    const run = peer([
      '--server',
      server.url,
      '--room',
      slug,
      '--model',
      'nano-shakespeare',
      `--token=${token}`,
      '--cache-dir',
      path.join(dir, 'cache'),
    ]);
    await expect
      .poll(() => run.out(), { timeout: 90_000 })
      .toContain(`Box Owner shares Nano Shakespeare (demo) (cpu) in room ${slug}`);
    // The account logs that session out: the peer cannot go on, and says so.
    const logout = await fetch(`${server.url}/api/trpc/auth.logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: '{}',
    });
    expect(logout.status).toBe(200);
    expect(await run.exited).toBe(1);
    expect(run.err()).toMatch(/The server ended this peer's session/);
    // A guest cannot: custom rooms need an account.
    const guest = peer([
      '--server',
      server.url,
      '--room',
      slug,
      '--model',
      'nano-shakespeare',
      '--name',
      'Stray',
      '--cache-dir',
      path.join(dir, 'cache'),
    ]);
    expect(await guest.exited).toBe(1);
    expect(guest.err()).toMatch(new RegExp(`Could not join room ${slug}: Join this room first`));
  }, 150_000);
});
