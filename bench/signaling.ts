// Signaling benchmarks (issue 6):
//   npx tsx bench/signaling.ts
// 1. Relay: 50 socket.io-client sockets in the global room each relay signals to random others as fast as acks
//    allow (a window of WINDOW in flight per socket) for DURATION_S; messages/s and p95 latency (send → the
//    target's `signal` event), against a bare Socket.IO server that relays to a socket id with no checks
//    (bench/bare-relay-server.ts), in the same run, each server in its own process.
// 2. Join to open: N headless Chromium pages open /rooms/global together; per page, the time from its join ack
//    to data channels open with all N-1 others; p50/p95 for N = 2 and 8, over ROUNDS rounds.
import { mkdtemp, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { buildClient, launchChromium } from '../tests/support/browser.ts';
import { startServer } from '../tests/support/server-process.ts';
import { type RelayResult, drive, joinedGuestSockets, quantile, relayThroughMesh } from './relay-load.ts';

const SOCKETS = 50;
const WINDOW = 4;
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function relayOurs(): Promise<RelayResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-signal-'));
  // The rate limit is per socket and far above what one socket sends here; raise it so the bench measures the relay.
  const server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    CLIENT_DIST_DIR: path.join(dir, 'none'),
    LOG_LEVEL: 'info',
    SOCKET_EVENTS_PER_SECOND: '10000',
  });
  try {
    const { sockets, peers } = await joinedGuestSockets(server.url, SOCKETS);
    const result = await drive({
      sockets,
      addresses: peers,
      send: relayThroughMesh,
      seconds: DURATION_S,
      window: WINDOW,
    });
    sockets.forEach((s) => s.disconnect());
    return result;
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

/** The floor: Socket.IO relaying to a socket id with no checks, in a child process like the real server. */
async function relayBare(): Promise<RelayResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'bare-relay-server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        const match = /listening on (http:\/\/[\d.:]+)/.exec(chunk.toString());
        if (match?.[1]) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`bare relay exited with ${code}`)));
    });
    const sockets = await Promise.all(
      Array.from({ length: SOCKETS }, async () => {
        const socket = io(url, { transports: ['websocket'], forceNew: true });
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        return socket;
      }),
    );
    const result = await drive({
      sockets,
      addresses: sockets.map((s) => s.id ?? ''),
      send: async (socket, to, data) => {
        await socket.emitWithAck('relay', { to, data });
      },
      seconds: DURATION_S,
      window: WINDOW,
    });
    sockets.forEach((s) => s.disconnect());
    return result;
  } finally {
    child.kill('SIGTERM');
  }
}

async function joinToOpen(peers: number): Promise<number[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-join-'));
  await buildClient(path.join(dir, 'dist'), 'bench');
  const server = await startServer({ DATA_DIR: path.join(dir, 'data'), CLIENT_DIST_DIR: path.join(dir, 'dist') });
  const durations: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // A fresh browser per round: reusing one across rounds lost pages mid-measurement ("Target closed").
      const browser = await launchChromium('no-gpu');
      try {
        const pages = await Promise.all(
          Array.from({ length: peers }, async () => {
            const page = await (await browser.newContext()).newPage();
            await page.goto(`${server.url}/rooms`);
            return page;
          }),
        );
        await Promise.all(pages.map((page) => page.goto(`${server.url}/rooms/global`)));
        const results = await Promise.all(
          pages.map(
            (page) =>
              // A string: it runs in the page (this file has no DOM types) and tsx must not wrap it in helpers.
              page.evaluate(`new Promise((resolve) => {
                const check = () => {
                  const joined = performance.getEntriesByName('mesh:joined').at(-1);
                  const open = document.querySelectorAll('[data-testid="peer-state"][data-state="open"]').length;
                  if (joined && open >= ${peers - 1}) resolve(performance.now() - joined.startTime);
                  else setTimeout(check, 10);
                };
                check();
              })`) as Promise<number>,
          ),
        );
        durations.push(...results);
      } finally {
        await browser.close();
      }
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
  return durations;
}

async function relayBench() {
  const bare = await relayBare();
  const ours = await relayOurs();
  console.log(`1. relay between ${SOCKETS} sockets for ${DURATION_S} s (window ${WINDOW} per socket):`);
  console.log(
    `   bare Socket.IO: ${bare.perSecond.toFixed(0)} msg/s, p50 ${bare.p50.toFixed(2)} ms, p95 ${bare.p95.toFixed(2)} ms`,
  );
  console.log(
    `   /mesh relay:    ${ours.perSecond.toFixed(0)} msg/s, p50 ${ours.p50.toFixed(2)} ms, p95 ${ours.p95.toFixed(2)} ms`,
  );
  console.log(
    `   ratio (ours / bare): ${(ours.perSecond / bare.perSecond).toFixed(2)} in throughput, ${(ours.p95 / bare.p95).toFixed(2)} in p95 latency`,
  );
}

async function joinBench() {
  for (const peers of [2, 8]) {
    const durations = await joinToOpen(peers);
    console.log(
      `2. join → all data channels open, ${peers} pages, ${durations.length} samples: p50 ${quantile(durations, 0.5).toFixed(0)} ms, p95 ${quantile(durations, 0.95).toFixed(0)} ms`,
    );
  }
}

// BENCH_PART=relay or join runs one half.
const part = process.env.BENCH_PART ?? 'all';
if (part !== 'join') await relayBench();
if (part !== 'relay') await joinBench();
