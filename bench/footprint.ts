// The server's footprint as a user runs it (issue 16):
//   npx tsx bench/footprint.ts
// Environment:
//   BENCH_SETTLE_S=5          seconds between healthy and the idle memory reading
//   BENCH_DURATION_S=10       seconds of signaling load (50 sockets relaying)
//   BENCH_ROUNDS=5            join rounds (each: 2 peers, then 8 peers joining the global room at once)
//   BENCH_PEER_PROCESSES=0    0: every werift peer in this bench process (one event loop for all); 1: each peer in a
//                             child process of its own (bench/werift-peer-process.ts), as `npm run peer` runs them;
//                             both: every round once each way, interleaved (an A/B under the same load)
// Builds what is stale first (scripts/build.mjs --if-stale), then, for `npm start` and for `node scripts/start.mjs`
// (a deployment's one process), on the embedded defaults (PGlite under a fresh DATA_DIR, in-memory Socket.IO
// adapter) with only the per-address limits raised so that one machine can play 50 guests: time from spawn to the
// first 200 from /api/health, resident memory of the whole process tree once idle (SETTLE_S after healthy; the first
// start initialises the database, so it runs once before the measured one), its peak under the signaling load of
// bench/signaling.ts (50 sockets relaying for DURATION_S), and headless werift peers joining the global room at once
// (join ack to every channel open, the CPU time of the peers and of the server per round, and the phases of every
// link; bench/werift-joins.ts). Linux only (/proc). The load average is printed: on a busy machine the times say
// little, read ratios.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, freePort } from '../tests/support/server-process.ts';
import { RELAY_LOAD_LIMITS, drive, joinedGuestSockets, quantile, relayThroughMesh } from './relay-load.ts';
import { JoinFigures, WeriftPeerProcesses, joinModes, joinRoundIn, treeCpuMs } from './werift-joins.ts';

const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 5);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MODES = joinModes();

interface Proc {
  pid: number;
  ppid: number;
  rssKiB: number;
  command: string;
}

async function processes(): Promise<Proc[]> {
  const all: Proc[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      const command = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      all.push({
        pid: Number(entry),
        ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]),
        rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0),
        command,
      });
    } catch {
      // It exited while being read.
    }
  }
  return all;
}

/** `root` and its descendants, with their resident memory. */
async function tree(root: number): Promise<Proc[]> {
  const all = await processes();
  const found = all.filter((p) => p.pid === root);
  for (let i = 0; i < found.length; i++) found.push(...all.filter((p) => p.ppid === found[i]!.pid));
  return found;
}
const mib = (procs: Proc[]) => procs.reduce((sum, p) => sum + p.rssKiB, 0) / 1024;

async function waitHealthy(url: string, child: ChildProcess): Promise<void> {
  for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/api/health`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('not healthy within 120 s');
}

async function measure(label: string, command: string[], dataDir: string) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  // A process group of its own, so that stopping it reaches npm's child too.
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATA_DIR: dataDir,
      PORT: String(port),
      ...RELAY_LOAD_LIMITS,
    },
  });
  try {
    await waitHealthy(url, child);
    const startSeconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_S * 1000));
    const idle = await tree(child.pid!);
    let peak = 0;
    const { sockets, peers } = await joinedGuestSockets(url, 50);
    const relay = await drive({
      sockets,
      addresses: peers,
      send: relayThroughMesh,
      seconds: DURATION_S,
      window: 4,
      during: async () => {
        for (const end = performance.now() + DURATION_S * 1000; performance.now() < end;) {
          peak = Math.max(peak, mib(await tree(child.pid!)));
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      },
    });
    sockets.forEach((socket) => socket.disconnect());
    const figures = MODES.flatMap((mode) => [new JoinFigures(2, mode), new JoinFigures(8, mode)]);
    const loads: number[] = [];
    const pool = MODES.includes('processes') ? await WeriftPeerProcesses.start(8) : null;
    try {
      for (let round = 0; round < ROUNDS; round++)
        for (const mode of MODES)
          for (const count of [2, 8]) {
            loads.push(loadavg()[0]!);
            const result = await joinRoundIn(mode, pool, url, count, () => treeCpuMs(child.pid!));
            figures.find((f) => f.mode === mode && f.count === count)!.add(result);
          }
    } finally {
      await pool?.stop();
    }
    const afterJoins = mib(await tree(child.pid!));
    console.log(`\n${label} (${command.join(' ')})`);
    console.log(`  start to healthy: ${startSeconds.toFixed(2)} s`);
    console.log(`  idle, whole tree: ${mib(idle).toFixed(0)} MiB`);
    for (const p of idle) console.log(`    ${(p.rssKiB / 1024).toFixed(0).padStart(4)} MiB  ${p.command.slice(0, 90)}`);
    console.log(
      `  under 50 relaying sockets (${relay.perSecond.toFixed(0)} msg/s, p95 ${relay.p95.toFixed(1)} ms): peak ${peak.toFixed(0)} MiB`,
    );
    console.log(
      `  joins: ${ROUNDS} rounds, load average (1 min) ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)}`,
    );
    for (const figure of figures)
      for (const line of figure.lines(quantile, figure.count === 8)) console.log(`  ${line}`);
    console.log(`  after the joins: ${afterJoins.toFixed(0)} MiB`);
  } finally {
    if (child.exitCode === null) {
      process.kill(-child.pid!, 'SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
}

const build = spawn(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: ROOT, stdio: 'inherit' });
if ((await new Promise((resolve) => build.once('exit', resolve))) !== 0) throw new Error('build failed');
const dir = await mkdtemp(path.join(tmpdir(), 'mesh-footprint-'));
try {
  // The first start on a fresh DATA_DIR initialises the database (initdb); a user meets that once.
  const port = await freePort();
  const firstStarted = performance.now();
  const first = spawn(process.execPath, ['scripts/start.mjs', '--no-build'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { PATH: process.env.PATH, DATA_DIR: path.join(dir, 'data'), PORT: String(port) },
  });
  await waitHealthy(`http://127.0.0.1:${port}`, first);
  console.log(`first start (initialises the database): ${((performance.now() - firstStarted) / 1000).toFixed(1)} s`);
  first.kill('SIGTERM');
  await new Promise((resolve) => first.once('exit', resolve));
  await measure('npm start', ['npm', 'start'], path.join(dir, 'data'));
  await measure('one process', [process.execPath, 'scripts/start.mjs'], path.join(dir, 'data'));
} finally {
  await rm(dir, { recursive: true, force: true });
}
