// Abuse benchmark (issue 11):
//   npx tsx bench/abuse.ts
// A legitimate user on 127.0.0.1 measures three latencies against the real server process, with its default
// limits on: a tRPC query (room.list), a socket join of the global room (join ack, then leave), and a
// signal relay between two of its sockets (send to the target's `signal` event). First quiet, then while an
// attacker on 127.0.0.2 floods for FLOOD_S seconds: tRPC batches, new guests, sign-in attempts, Engine.IO
// handshakes and sockets into `global`, and relay spam (each bounded in count and time). The figure is the p95
// under flood over the quiet p95; the goal is at most 2.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Socket, io } from 'socket.io-client';
import { Agent, request as httpRequest } from 'node:http';
import { parseEnv } from '../src/server/env.ts';
import { guestCookie, startServer } from '../tests/support/server-process.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 100);
const WARM_UP = 20;
const FLOOD_S = Number(process.env.BENCH_FLOOD_S ?? 15);
const ATTACKER = '127.0.0.2';
/** Requests the attacker keeps in flight per kind (bounded: this is a flood, not a denial of this machine). */
const ATTACK_CONCURRENCY = 8;
const ATTACK_SOCKETS = 200;
/** Which floods run (all by default), to see what each costs the legitimate user. */
const FLOODS = new Set((process.env.BENCH_FLOODS ?? 'batch,guest,login,health,sockets').split(','));

const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0;
const round = (value: number) => Math.round(value * 100) / 100;

interface Figures {
  query: number[];
  join: number[];
  relay: number[];
}

function connect(url: string, cookie: string, localAddress?: string): Promise<Socket> {
  const socket = io(`${url}/mesh`, {
    transports: ['websocket'],
    extraHeaders: { cookie },
    reconnection: false,
    forceNew: true,
    ...(localAddress ? { localAddress } : {}),
  } as never);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (error) => {
      socket.close();
      reject(error);
    });
  });
}

function ack<T>(socket: Socket, event: string, payload: unknown): Promise<T> {
  return socket.timeout(10_000).emitWithAck(event, payload) as Promise<T>;
}

async function joinGlobal(
  socket: Socket,
): Promise<{ ok: boolean; data?: { self: { peerId: string } }; error?: string }> {
  return ack(socket, 'room:join', { room: 'global' });
}

/** One round of the legitimate user's three measurements. */
async function measure(
  url: string,
  cookie: string,
  sender: Socket,
  target: Socket,
  targetPeerId: string,
  figures: Figures,
  measurer: Socket,
) {
  let started = performance.now();
  const me = await fetch(`${url}/api/trpc/room.list`, { headers: { cookie } });
  await me.arrayBuffer();
  if (me.status !== 200) throw new Error(`legitimate query answered ${me.status}`);
  figures.query.push(performance.now() - started);

  started = performance.now();
  const joined = await joinGlobal(measurer);
  if (!joined.ok) throw new Error(`legitimate join refused: ${joined.error}`);
  figures.join.push(performance.now() - started);
  await ack(measurer, 'room:leave', { room: 'global' });

  started = performance.now();
  const delivered = new Promise<void>((resolve) => target.once('signal', () => resolve()));
  const relayed = await ack<{ ok: boolean; error?: string }>(sender, 'signal:relay', {
    room: 'global',
    to: targetPeerId,
    data: { type: 'candidate', candidate: 'x' },
  });
  if (!relayed.ok) throw new Error(`legitimate relay refused: ${relayed.error}`);
  await delivered;
  figures.relay.push(performance.now() - started);
}

async function series(
  url: string,
  cookie: string,
  sender: Socket,
  target: Socket,
  targetPeerId: string,
  measurer: Socket,
  until: () => boolean,
  samples = SAMPLES,
): Promise<Figures> {
  const figures: Figures = { query: [], join: [], relay: [] };
  for (let i = 0; i < samples && !until(); i++) {
    await measure(url, cookie, sender, target, targetPeerId, figures, measurer);
    // About six rounds a second: a busy person's client, well within the per-IP budgets (RATE_LIMIT_MAX a minute).
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  return figures;
}

interface AttackCounts {
  sent: number;
  refused: number;
  socketsOpened: number;
  socketsRefused: number;
}

/** The attacker from another address: every kind of flood at once, until `deadline`. */
async function attack(url: string, deadline: number): Promise<AttackCounts> {
  const agent = new Agent({ keepAlive: true, maxSockets: ATTACK_CONCURRENCY * 4 });
  const counts: AttackCounts = { sent: 0, refused: 0, socketsOpened: 0, socketsRefused: 0 };
  const { hostname, port } = new URL(url);
  const request = (pathAndQuery: string, init: { method?: string; body?: string; cookie?: string } = {}) => {
    counts.sent++;
    return new Promise<{ status: number; setCookie: string } | null>((resolve) => {
      const req = httpRequest(
        {
          host: hostname,
          port,
          path: pathAndQuery,
          method: init.method ?? 'GET',
          agent,
          localAddress: ATTACKER,
          headers: { 'content-type': 'application/json', ...(init.cookie ? { cookie: init.cookie } : {}) },
        },
        (response) => {
          response.resume();
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            if (status === 429 || status === 403) counts.refused++;
            resolve({ status, setCookie: String(response.headers['set-cookie'] ?? '') });
          });
        },
      );
      req.on('error', () => {
        counts.refused++;
        resolve(null);
      });
      req.end(init.body);
    });
  };
  const guest = await request('/api/trpc/auth.guest', { method: 'POST', body: '{}' });
  const cookie = (guest?.setCookie ?? '').split(';')[0] ?? '';
  const batch = `/api/trpc/${Array.from({ length: 10 }, () => 'room.list').join(',')}?batch=1&input=${encodeURIComponent('{}')}`;
  const kinds: Record<string, () => Promise<unknown>> = {
    batch: () => request(batch, { cookie }),
    guest: () => request('/api/trpc/auth.guest', { method: 'POST', body: '{}' }),
    login: () =>
      request('/api/trpc/auth.login', {
        method: 'POST',
        body: JSON.stringify({ username: 'victim', password: 'not-the-password' }),
      }),
    health: () => request('/api/health'),
  };
  const floods = Object.entries(kinds)
    .filter(([kind]) => FLOODS.has(kind))
    .map(([, flood]) => flood);
  const loops = floods.flatMap((flood) =>
    Array.from({ length: ATTACK_CONCURRENCY }, async () => {
      while (Date.now() < deadline) await flood();
    }),
  );
  // Sockets: as many as it can open into global, then relay spam on those it got.
  const sockets: Socket[] = [];
  const socketFlood = (async () => {
    if (!FLOODS.has('sockets')) return;
    for (let i = 0; i < ATTACK_SOCKETS && Date.now() < deadline; i++) {
      try {
        const socket = await connect(url, cookie, ATTACKER);
        sockets.push(socket);
        counts.socketsOpened++;
        void joinGlobal(socket).catch(() => undefined);
      } catch {
        counts.socketsRefused++;
      }
    }
    while (Date.now() < deadline) {
      await Promise.all(
        sockets.map((socket) =>
          ack(socket, 'signal:relay', {
            room: 'global',
            to: '00000000-0000-4000-8000-000000000000',
            data: 'x'.repeat(1000),
          }).catch(() => undefined),
        ),
      );
    }
  })();
  await Promise.all([...loops, socketFlood]);
  for (const socket of sockets) socket.close();
  agent.destroy();
  return counts;
}

function attackInChild(url: string, deadline: number): Promise<AttackCounts> {
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename], {
    env: { ...process.env, BENCH_ATTACK: JSON.stringify({ url, deadline }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(output) as AttackCounts) : reject(new Error(`attacker exited with ${code}`)),
    ),
  );
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-abuse-'));
  // The server's own defaults (test support turns smoothing off); BENCH_SERVER_ENV adds settings as JSON, to compare
  // limits (e.g. '{"RATE_LIMIT_BURST_SECONDS":"3600"}').
  const defaults = parseEnv({});
  const server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    CLIENT_DIST_DIR: path.join(dir, 'none'),
    LOG_LEVEL: 'info',
    RATE_LIMIT_BURST_SECONDS: String(defaults.RATE_LIMIT_BURST_SECONDS),
    ...(JSON.parse(process.env.BENCH_SERVER_ENV ?? '{}') as Record<string, string>),
  });
  try {
    const cookie = await guestCookie(server.url, 'Legit');
    const [sender, target, measurer] = await Promise.all([
      connect(server.url, cookie),
      connect(server.url, cookie),
      connect(server.url, cookie),
    ]);
    if (!sender || !target || !measurer) throw new Error('no sockets');
    const [, joinedTarget] = await Promise.all([joinGlobal(sender), joinGlobal(target)]);
    const targetPeerId = joinedTarget.data?.self.peerId ?? '';

    // Warm-up, then quiet.
    await series(server.url, cookie, sender, target, targetPeerId, measurer, () => false, WARM_UP).catch(
      (error: unknown) => {
        throw new Error(`warm-up failed: ${String(error)}`);
      },
    );
    const quiet = await series(server.url, cookie, sender, target, targetPeerId, measurer, () => false);

    const deadline = Date.now() + FLOOD_S * 1000;
    // The attacker runs in a process of its own: sharing this one's event loop would slow the measurements here,
    // not the server.
    const flood = attackInChild(server.url, deadline);
    // Let the flood start before measuring under it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const loaded = await series(
      server.url,
      cookie,
      sender,
      target,
      targetPeerId,
      measurer,
      () => Date.now() > deadline,
    );
    const counts = await flood;
    if (process.env.BENCH_TRACE)
      console.log(
        'per round under flood [relay, query, join] ms:',
        JSON.stringify(loaded.relay.map((v, i) => [v, loaded.query[i] ?? 0, loaded.join[i] ?? 0].map(Math.round))),
      );

    const rows = (['query', 'join', 'relay'] as const).map((kind) => ({
      kind,
      quietP50: round(quantile(quiet[kind], 0.5)),
      quietP95: round(quantile(quiet[kind], 0.95)),
      floodP50: round(quantile(loaded[kind], 0.5)),
      floodP95: round(quantile(loaded[kind], 0.95)),
      ratioP95: round(quantile(loaded[kind], 0.95) / quantile(quiet[kind], 0.95)),
      samples: `${quiet[kind].length}/${loaded[kind].length}`,
    }));
    console.table(rows);
    console.log(
      `attacker (${ATTACKER}, ${FLOOD_S} s): ${counts.sent} HTTP requests, ${counts.refused} refused (429/403/failed); sockets ${counts.socketsOpened} opened, ${counts.socketsRefused} refused`,
    );
    for (const socket of [sender, target, measurer]) socket.close();
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.env.BENCH_ATTACK) {
  const { url, deadline } = JSON.parse(process.env.BENCH_ATTACK) as { url: string; deadline: number };
  process.stdout.write(JSON.stringify(await attack(url, deadline)));
  process.exit(0);
} else {
  await main();
}
