// The real server process on a PostgreSQL cluster of this file's own (another port; the shared one on 5432 is never
// touched), which the test crashes and starts again while clients keep writing: requests that need the database are
// refused at once as retryable (503 + Retry-After, SERVICE_UNAVAILABLE, UNAVAILABLE on the socket), what does not need
// it goes on (liveness, a download in progress), the server recovers by itself, logs the outage once each way, and every
// write it acknowledged is there afterwards. Skips without PostgreSQL's server binaries, unless REQUIRE_POSTGRES=1.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FakeHub, bufferContent, generatedContent } from '../scripts/fake-hub.ts';
import { reconnectWhenAvailable } from '../src/shared/rtc/reconnect-when-available.ts';
import { connectMesh, type MeshClient } from './support/mesh-socket.ts';
import { type ScratchPostgres, scratchPostgres } from './support/scratch-services.ts';
import { type ServerProcess, guestCookie, signUpCookie, startServer } from './support/server-process.ts';
import { type TcpProxy, tcpProxy } from './support/tcp-proxy.ts';

const cluster = await scratchPostgres();
if (typeof cluster === 'string') console.warn(`Skipping the PostgreSQL outage tests: ${cluster}`);

/** A write the traffic made, and how the server answered it. */
interface Outcome {
  name: string;
  status: number | 'network error';
  ms: number;
  retryAfter: string | null;
  code: string | null;
  at: number;
}

const MODEL_SIZE = 3 * 1024 * 1024;
const HELD_AT = 1024 * 1024;

describe.skipIf(typeof cluster === 'string')('the server process while its PostgreSQL goes away and comes back', () => {
  const postgres = cluster as ScratchPostgres;
  let dir: string;
  let server: ServerProcess;
  let hub: FakeHub;
  let commit: string;
  let release: () => void = () => {};
  const outcomes: Outcome[] = [];
  let writing = true;
  let writers: Promise<void>[] = [];
  const sockets: MeshClient[] = [];
  /** A connected client whose connection the test cuts during the outage (through `balancer`); it must come back. */
  let balancer: TcpProxy;
  let returning: MeshClient;
  const handshakeRefusals: string[] = [];

  const get = async (url: string, headers: Record<string, string> = {}) => {
    const started = performance.now();
    const response = await fetch(`${server.url}${url}`, { headers });
    return { response, ms: performance.now() - started, body: (await response.json()) as Record<string, unknown> };
  };
  const health = async () => (await get('/api/health')).response.status;
  const sql = async <Row extends pg.QueryResultRow>(text: string): Promise<Row[]> => {
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      return (await client.query<Row>(text)).rows;
    } finally {
      await client.end();
    }
  };

  async function write(name: string): Promise<Outcome> {
    const started = performance.now();
    try {
      const response = await fetch(`${server.url}/api/trpc/auth.guest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ displayName: name }),
      });
      const body = (await response.json()) as { error?: { data?: { code?: string } } };
      return {
        name,
        status: response.status,
        ms: performance.now() - started,
        retryAfter: response.headers.get('retry-after'),
        code: body.error?.data?.code ?? null,
        at: Date.now(),
      };
    } catch {
      return {
        name,
        status: 'network error',
        ms: performance.now() - started,
        retryAfter: null,
        code: null,
        at: Date.now(),
      };
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mesh-outage-pg-'));
    hub = new FakeHub();
    await hub.start();
    ({ commit } = await hub.addRepo('mesh/tiny', {
      'config.json': bufferContent('{"model_type":"llama"}'),
      'onnx/model.onnx': generatedContent(MODEL_SIZE, 5),
    }));
    const manifest = path.join(dir, 'manifest.json');
    await writeFile(
      manifest,
      JSON.stringify({
        mode: 'replace',
        models: [
          {
            id: 'tiny',
            name: 'Tiny',
            repo: 'mesh/tiny',
            revision: 'main',
            task: 'text-generation',
            dtype: { webgpu: 'fp32', wasm: 'fp32' },
            contextLength: 256,
            license: 'mit',
            files: [{ path: 'config.json' }, { path: 'onnx/model.onnx' }],
          },
        ],
      }),
    );
    server = await startServer({
      DATA_DIR: dir,
      CLIENT_DIST_DIR: path.join(dir, 'no-client'),
      DATABASE_URL: postgres.url,
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: manifest,
      // The held download is released by the test, not by the stall timer.
      DOWNLOAD_STALL_TIMEOUT_MS: '600000',
      DOWNLOAD_DISK_MARGIN_BYTES: '0',
      // The traffic is all from 127.0.0.1 and keeps asking through the outage.
      RATE_LIMIT_MAX: '1000000',
      GUEST_CREATIONS_PER_IP_PER_HOUR: '1000000',
      AUTH_ATTEMPTS_PER_IP_PER_MINUTE: '1000000',
      REQUESTS_IN_FLIGHT_PER_IP: '32',
      SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '100000',
    });
  });

  afterAll(async () => {
    writing = false;
    release();
    await Promise.all(writers);
    for (const socket of sockets) socket.disconnect();
    balancer?.close();
    server?.child.kill('SIGTERM');
    await server?.exited;
    await hub?.stop();
    await postgres.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses what needs the database at once, as retryable, while PostgreSQL is down, and stays live', async () => {
    const account = await signUpCookie(server.url, 'outage-owner');
    const guest = await guestCookie(server.url, 'Before');
    // The download: the Hub holds the model file after its first MiB until the test lets it go on.
    hub.injectFault('onnx/model.onnx', {
      kind: 'hold',
      atByte: HELD_AT,
      until: new Promise<void>((resolve) => (release = resolve)),
    });
    const started = await fetch(`${server.url}/api/trpc/models.download`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: account },
      body: '{"id":"tiny"}',
    });
    expect(started.status).toBe(200);
    const status = async () =>
      (await get(`/api/trpc/models.status?input=${encodeURIComponent('{"id":"tiny"}')}`)).body as {
        result?: { data: { phase: string; bytesDone: number; bytesTotal: number } };
      };
    await vi.waitFor(async () => expect((await status()).result?.data.bytesDone).toBeGreaterThanOrEqual(HELD_AT), {
      timeout: 20_000,
      interval: 50,
    });

    // Two clients keep signing up guests, before, through and after the outage.
    writers = [0, 1].map(async (writer) => {
      for (let i = 0; writing; i++) {
        const outcome = await write(`w${writer}-${i}`);
        outcomes.push(outcome);
        if (outcome.status !== 200) await new Promise((resolve) => setTimeout(resolve, 10));
      }
    });
    await vi.waitFor(() => expect(outcomes.filter((o) => o.status === 200).length).toBeGreaterThanOrEqual(20), {
      timeout: 20_000,
      interval: 20,
    });
    balancer = await tcpProxy(Number(new URL(server.url).port));
    returning = await connectMesh(balancer.url, sockets, {
      cookie: guest,
      reconnection: true,
      reconnectionDelay: 50,
      reconnectionDelayMax: 100,
    });
    reconnectWhenAvailable(returning);
    returning.on('connect_error', (error: Error & { data?: { code?: string } }) =>
      handshakeRefusals.push(error.data?.code ?? error.message),
    );

    await postgres.stop('immediate');
    await vi.waitFor(async () => expect(await health()).toBe(503), { timeout: 10_000, interval: 50 });
    const ready = await get('/api/health/ready');
    expect(ready.response.status).toBe(503);
    expect(ready.response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(ready.body).toMatchObject({
      status: 'error',
      db: 'down',
      dependencies: { database: { kind: 'postgres', state: 'down' } },
    });
    expect((await get('/api/health/live')).response.status).toBe(200);

    // A mutation: 503 with Retry-After and SERVICE_UNAVAILABLE, well under a second.
    const refused = await write('during');
    expect(refused).toMatchObject({
      status: 503,
      code: 'SERVICE_UNAVAILABLE',
      retryAfter: expect.stringMatching(/^\d+$/),
    });
    expect(refused.ms).toBeLessThan(1000);
    // A signed-in query: the session cannot be checked, which is not "signed out".
    const me = await get('/api/trpc/auth.me', { cookie: guest });
    expect(me.response.status).toBe(503);
    expect(me.body).toMatchObject({
      error: { message: expect.stringMatching(/database is unavailable/), data: { code: 'SERVICE_UNAVAILABLE' } },
    });
    // A socket: refused with UNAVAILABLE and when to try again, at once.
    const handshake = performance.now();
    const error = await connectMesh(server.url, sockets, { cookie: guest }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ data: { code: 'UNAVAILABLE', retryInMs: expect.any(Number) } });
    expect(performance.now() - handshake).toBeLessThan(1000);
    // A client whose connection drops now is refused as UNAVAILABLE when it reconnects, and keeps trying.
    const dropped = new Promise((resolve) => returning.once('disconnect', resolve));
    balancer.route(null);
    await dropped;
    balancer.route(Number(new URL(server.url).port));
    await vi.waitFor(
      () => expect(handshakeRefusals.filter((code) => code === 'UNAVAILABLE').length).toBeGreaterThanOrEqual(2),
      { timeout: 10_000, interval: 20 },
    );
    expect(returning.connected).toBe(false);
    // The download in progress is still reported (from memory; no session needed).
    expect((await status()).result?.data).toMatchObject({ phase: 'downloading', bytesDone: expect.any(Number) });
    await vi.waitFor(() => expect(outcomes.filter((o) => o.status === 503).length).toBeGreaterThanOrEqual(20), {
      timeout: 10_000,
      interval: 20,
    });
  });

  it('lets a download in progress finish its file while PostgreSQL is down', async () => {
    release();
    const file = path.join(dir, 'models', 'mesh/tiny', commit, 'onnx/model.onnx');
    await vi.waitFor(() => expect(existsSync(file)).toBe(true), { timeout: 20_000, interval: 50 });
    expect(await health()).toBe(503);
  });

  it('serves again once PostgreSQL is back, records the download, and logged the outage once each way', async () => {
    await postgres.start();
    // Probed four times a second while down: back well within the wait (bench/outage.ts measures it).
    await vi.waitFor(async () => expect(await health()).toBe(200), { timeout: 5000, interval: 25 });
    // The client refused during the outage is connected again, by itself.
    await vi.waitFor(() => expect(returning.connected).toBe(true), { timeout: 10_000, interval: 20 });
    expect(handshakeRefusals.every((code) => code === 'UNAVAILABLE')).toBe(true);
    await vi.waitFor(
      async () =>
        expect(await sql<{ phase: string }>(`SELECT phase FROM "ModelDownload" WHERE "modelId" = 'tiny'`)).toEqual([
          { phase: 'READY' },
        ]),
      { timeout: 10_000, interval: 50 },
    );

    const afterCount = outcomes.length;
    await vi.waitFor(
      () => expect(outcomes.slice(afterCount).filter((o) => o.status === 200).length).toBeGreaterThanOrEqual(10),
      { timeout: 20_000, interval: 20 },
    );
    writing = false;
    await Promise.all(writers);

    // Every answer was a success or a retryable refusal (no 500, no dropped connection), and every refusal was quick.
    const unexpected = outcomes.filter(
      (o) => o.status !== 200 && !(o.status === 503 && o.code === 'SERVICE_UNAVAILABLE' && o.retryAfter !== null),
    );
    const errorLines = () =>
      server
        .output()
        .split('\n')
        .filter((line) => /"level":(50|60)/.test(line));
    expect(unexpected, errorLines().join('\n').slice(0, 4000)).toEqual([]);
    const refusals = outcomes.filter((o) => o.status === 503);
    expect(Math.max(...refusals.map((o) => o.ms))).toBeLessThan(1000);
    // Nothing acknowledged is lost (a crash of PostgreSQL, not a clean stop).
    const names = new Set(
      (await sql<{ displayName: string }>(`SELECT "displayName" FROM "User"`)).map((row) => row.displayName),
    );
    const lost = outcomes.filter((o) => o.status === 200 && !names.has(o.name)).map((o) => o.name);
    expect(lost).toEqual([]);

    expect(server.child.exitCode).toBeNull();
    const log = server.output();
    expect(log.match(/database went away/g)).toHaveLength(1);
    expect(log.match(/database is back/g)).toHaveLength(1);
    // No error line per refused request.
    expect(errorLines()).toEqual([]);
  }, 60_000);
});
