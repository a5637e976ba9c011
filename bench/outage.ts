// Outage benchmark (issue 20):
//   npx tsx bench/outage.ts
// The real server process on a PostgreSQL cluster and a redis-server of this bench's own (free ports; the shared
// 5432/6379 are never touched), BENCH_ROUNDS outages of each, the dependency killed while a client keeps asking:
//   - healthy: a write (`auth.guest`) and a socket join of `global` (ack), the baseline;
//   - down: how long the same requests take to be refused (503 / UNAVAILABLE), as a ratio against the baseline;
//   - detection: from the kill to /api/health answering 503;
//   - recovery: from the dependency accepting connections again to /api/health answering 200, and to the first
//     write (or join) that succeeds.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Socket, io } from 'socket.io-client';
import { scratchPostgres, scratchRedis } from '../tests/support/scratch-services.ts';
import { guestCookie, startServer } from '../tests/support/server-process.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 50);
/** Polling of /api/health and of the first success: the resolution of the detection and recovery figures. */
const POLL_MS = 5;

const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0;
const ms = (value: number) => `${value.toFixed(1)} ms`;
const summary = (values: number[]) =>
  `p50 ${ms(quantile(values, 0.5))}, p95 ${ms(quantile(values, 0.95))}, max ${ms(Math.max(...values))}`;

async function until(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return performance.now() - started;
}

async function timedWrite(url: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const response = await fetch(`${url}/api/trpc/auth.guest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  await response.arrayBuffer();
  return { ms: performance.now() - started, status: response.status };
}

function connect(url: string, cookie: string): Promise<Socket> {
  const socket = io(`${url}/mesh`, {
    transports: ['websocket'],
    extraHeaders: { cookie },
    reconnection: false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

async function timedJoin(socket: Socket): Promise<{ ms: number; ok: boolean; error?: string }> {
  const started = performance.now();
  const result = (await socket.timeout(10_000).emitWithAck('room:join', { room: 'global' })) as {
    ok: boolean;
    error?: string;
  };
  const took = performance.now() - started;
  if (result.ok) await socket.timeout(10_000).emitWithAck('room:leave', { room: 'global' });
  return { ms: took, ok: result.ok, ...(result.error ? { error: result.error } : {}) };
}

const healthIs = (url: string, status: number) => async () => (await fetch(`${url}/api/health`)).status === status;

async function samples<T extends { ms: number }>(
  take: () => Promise<T>,
  accept: (sample: T) => boolean,
  what: string,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const sample = await take();
    if (!accept(sample)) throw new Error(`${what}: unexpected answer ${JSON.stringify(sample)}`);
    times.push(sample.ms);
  }
  return times;
}

async function main() {
  const postgres = await scratchPostgres();
  const redis = await scratchRedis();
  if (typeof postgres === 'string' || typeof redis === 'string')
    throw new Error(`cannot run: ${String(postgres)} / ${String(redis)}`);
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-outage-'));
  const server = await startServer({
    DATA_DIR: dir,
    CLIENT_DIST_DIR: path.join(dir, 'no-client'),
    DATABASE_URL: postgres.url,
    REDIS_URL: redis.url,
    LOG_LEVEL: 'info',
    RATE_LIMIT_MAX: '1000000',
    GUEST_CREATIONS_PER_IP_PER_HOUR: '1000000',
    SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '100000',
    SOCKET_EVENTS_PER_SECOND: '10000',
  });
  const url = server.url;
  const socket = await connect(url, await guestCookie(url, 'Bench'));
  try {
    // Warm-up: the first requests pay for JIT and pool connections.
    await samples(
      () => timedWrite(url),
      (s) => s.status === 200,
      'warm-up write',
    );
    await samples(
      () => timedJoin(socket),
      (s) => s.ok,
      'warm-up join',
    );

    const figures = {
      pg: {
        healthy: [] as number[],
        down: [] as number[],
        detect: [] as number[],
        ready: [] as number[],
        firstWrite: [] as number[],
      },
      redis: {
        healthy: [] as number[],
        down: [] as number[],
        detect: [] as number[],
        ready: [] as number[],
        firstJoin: [] as number[],
      },
    };
    for (let round = 0; round < ROUNDS; round++) {
      figures.pg.healthy.push(
        ...(await samples(
          () => timedWrite(url),
          (s) => s.status === 200,
          'healthy write',
        )),
      );
      await postgres.stop('immediate');
      figures.pg.detect.push(await until(healthIs(url, 503)));
      figures.pg.down.push(
        ...(await samples(
          () => timedWrite(url),
          (s) => s.status === 503,
          'write during the outage',
        )),
      );
      await postgres.start();
      const back = performance.now();
      await until(healthIs(url, 200));
      figures.pg.ready.push(performance.now() - back);
      await until(async () => (await timedWrite(url)).status === 200);
      figures.pg.firstWrite.push(performance.now() - back);

      figures.redis.healthy.push(
        ...(await samples(
          () => timedJoin(socket),
          (s) => s.ok,
          'healthy join',
        )),
      );
      await redis.stop();
      figures.redis.detect.push(await until(healthIs(url, 503)));
      figures.redis.down.push(
        ...(await samples(
          () => timedJoin(socket),
          (s) => s.error === 'UNAVAILABLE',
          'join during the outage',
        )),
      );
      await redis.start();
      const returned = performance.now();
      await until(healthIs(url, 200));
      figures.redis.ready.push(performance.now() - returned);
      await until(async () => (await timedJoin(socket)).ok);
      figures.redis.firstJoin.push(performance.now() - returned);
    }

    const ratio = (down: number[], healthy: number[]) => (quantile(down, 0.95) / quantile(healthy, 0.95)).toFixed(2);
    console.log(`${ROUNDS} outages of each, ${SAMPLES} requests per phase and round`);
    console.log(`PostgreSQL write (auth.guest): healthy ${summary(figures.pg.healthy)}`);
    console.log(
      `  refused while down (503):     ${summary(figures.pg.down)}  (p95 ratio to healthy ${ratio(figures.pg.down, figures.pg.healthy)})`,
    );
    console.log(`  kill → health 503:            ${figures.pg.detect.map(ms).join(', ')}`);
    console.log(`  accepting again → health 200: ${figures.pg.ready.map(ms).join(', ')}`);
    console.log(`  accepting again → first write: ${figures.pg.firstWrite.map(ms).join(', ')}`);
    console.log(`Redis join (room:join ack):    healthy ${summary(figures.redis.healthy)}`);
    console.log(
      `  refused while down (UNAVAILABLE): ${summary(figures.redis.down)}  (p95 ratio to healthy ${ratio(figures.redis.down, figures.redis.healthy)})`,
    );
    console.log(`  kill → health 503:            ${figures.redis.detect.map(ms).join(', ')}`);
    console.log(`  accepting again → health 200: ${figures.redis.ready.map(ms).join(', ')}`);
    console.log(`  accepting again → first join: ${figures.redis.firstJoin.map(ms).join(', ')}`);
    // One line each way per outage, whatever the number of refused requests.
    const log = server.output();
    for (const name of ['database', 'redis']) {
      console.log(
        `log: "${name} went away" ${log.split(`${name} went away`).length - 1}, "${name} is back" ${log.split(`${name} is back`).length - 1}`,
      );
    }
    if (server.child.exitCode !== null) throw new Error('the server exited during the bench');
  } finally {
    socket.disconnect();
    server.child.kill('SIGTERM');
    await server.exited;
    await postgres.destroy();
    await redis.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
