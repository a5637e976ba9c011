// The server's footprint as a user runs it (issue 16):
//   npx tsx bench/footprint.ts
// Environment:
//   BENCH_SETTLE_S=5          seconds between healthy and the idle memory reading
//   BENCH_DURATION_S=10       seconds of each signaling load (50 sockets relaying): first at 50 signals a second per
//                             socket (SOCKET_EVENTS_PER_SECOND's default, the most a client may send), then as fast
//                             as acks come (the limit raised: as much as the CPU relays)
//   BENCH_ROUNDS=5            join rounds (each: 2 peers, then 8 peers joining the global room at once)
//   BENCH_NPM_START=1         0: measure only `node scripts/start.mjs`, not `npm start` too
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
// little, read ratios. The server loads bench/memory-probe.mjs (NODE_OPTIONS), which samples its memory by kind four
// times a second: at each load's peak the bench prints V8's heap (new space committed, old space used), external
// memory (WebAssembly memories, PGlite's among them), array buffers, and the garbage collections and server CPU time
// per relayed message.
import { type ChildProcess, spawn } from 'node:child_process';
import { type FileHandle, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, freePort } from '../tests/support/server-process.ts';
import { RELAY_LOAD_LIMITS, drive, joinedGuestSockets, quantile, relayThroughMesh } from './relay-load.ts';
import { JoinFigures, WeriftPeerProcesses, joinModes, joinRoundIn, treeCpuMs } from './werift-joins.ts';

const PROBE = path.join(import.meta.dirname, 'memory-probe.mjs');
/** SOCKET_EVENTS_PER_SECOND's default: the most signals a second one client may send (docs/SECURITY.md). */
const DEFAULT_EVENTS_PER_SECOND = 50;

const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 5);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const NPM_START = process.env.BENCH_NPM_START !== '0';
const MODES = joinModes();

interface Proc {
  pid: number;
  ppid: number;
  rssKiB: number;
  /** Proportional set size: each resident page divided among the processes that share it (smaps_rollup). */
  pssKiB: number;
  /** Resident pages no other process maps (Private_Clean + Private_Dirty). */
  privateKiB: number;
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
      const rollup = await readFile(`/proc/${entry}/smaps_rollup`, 'utf8').catch(() => '');
      const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? 0);
      all.push({
        pid: Number(entry),
        ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]),
        rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0),
        pssKiB: kib('Pss'),
        privateKiB: kib('Private_Clean') + kib('Private_Dirty'),
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
/**
 * The tree's resident memory with each page counted once, however many of its processes map it: the physical frames
 * (/proc/PID/pagemap, which shows them to root only; null otherwise) of every mapping with resident pages
 * (/proc/PID/smaps). This is the "RSS of the whole tree" a machine must hold; the sum of the processes' RSS counts
 * the node binary's code once for npm and again for the server.
 */
async function uniqueResidentMiB(procs: Proc[]): Promise<number | null> {
  const frames = new Set<number>();
  for (const proc of procs) {
    let smaps: string;
    let pagemap: FileHandle;
    try {
      smaps = await readFile(`/proc/${proc.pid}/smaps`, 'utf8');
      pagemap = await open(`/proc/${proc.pid}/pagemap`, 'r');
    } catch {
      continue; // It exited.
    }
    try {
      let range: [number, number] | null = null;
      for (const line of smaps.split('\n')) {
        const header = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
        if (header) range = [parseInt(header[1]!, 16), parseInt(header[2]!, 16)];
        const rss = /^Rss:\s+(\d+)/.exec(line);
        if (!rss || !range || rss[1] === '0') continue;
        const pages = (range[1] - range[0]) / 4096;
        const entries = new BigUint64Array(pages);
        await pagemap.read(new Uint8Array(entries.buffer), 0, pages * 8, (range[0] / 4096) * 8);
        for (const entry of entries)
          if (entry >> 63n) {
            const frame = Number(entry & ((1n << 55n) - 1n));
            if (frame === 0) return null; // Not root: the frames are hidden.
            frames.add(frame);
          }
      }
    } finally {
      await pagemap.close();
    }
  }
  return (frames.size * 4096) / 1024 / 1024;
}

const mib = (procs: Proc[], field: 'rssKiB' | 'pssKiB' | 'privateKiB' = 'rssKiB') =>
  procs.reduce((sum, p) => sum + p[field], 0) / 1024;

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

/** One line of bench/memory-probe.mjs, MiB. */
interface Sample {
  t: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  spaces: Record<string, number>;
  committed: Record<string, number>;
  gc: { minor: number; minorMs: number; major: number; majorMs: number };
}

async function samples(file: string, from: number, to: number): Promise<Sample[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Sample)
    .filter((sample) => sample.t >= from && sample.t <= to);
}

/** The server's memory at its peak during a load, and its collections and CPU time over the load. */
function breakdown(during: Sample[], messages: number, cpuMs: number): string[] {
  if (during.length === 0) return ['    (no memory samples from the server)'];
  const peak = during.reduce((a, b) => (b.rss > a.rss ? b : a));
  const first = during[0]!.gc;
  const last = during.at(-1)!.gc;
  const per = (n: number) => (messages ? n / messages : 0);
  return [
    `    server at its peak: RSS ${peak.rss.toFixed(0)} MiB = V8 heap ${peak.heapTotal.toFixed(0)} committed (new space ${(peak.committed.new_space ?? 0).toFixed(0)}, old space ${(peak.committed.old_space ?? 0).toFixed(0)} of which ${(peak.spaces.old_space ?? 0).toFixed(0)} used, large objects ${(peak.committed.large_object_space ?? 0).toFixed(0)}, code ${(peak.committed.code_space ?? 0).toFixed(0)}) + ${(peak.rss - peak.heapTotal).toFixed(0)} outside it (WebAssembly memories' resident pages, Node's own code and buffers); external ${peak.external.toFixed(0)} MiB reserved (WebAssembly memories: PGlite's, Prisma's), array buffers ${peak.arrayBuffers.toFixed(0)}`,
    `    over the load: ${last.minor - first.minor} scavenges (${last.minorMs - first.minorMs} ms), ${last.major - first.major} mark-compacts (${last.majorMs - first.majorMs} ms); server CPU ${(per(cpuMs) * 1000).toFixed(1)} µs per relayed message`,
  ];
}

async function measure(label: string, command: string[], dataDir: string) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const probeFile = path.join(path.dirname(dataDir), `probe-${port}.jsonl`);
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
      NODE_OPTIONS: `--import=${PROBE}`,
      BENCH_MEMORY_PROBE: probeFile,
    },
  });
  try {
    await waitHealthy(url, child);
    const startSeconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_S * 1000));
    const idle = await tree(child.pid!);
    const idleUnique = await uniqueResidentMiB(idle);
    const { sockets, peers } = await joinedGuestSockets(url, 50);
    const loads: { name: string; lines: string[] }[] = [];
    for (const [name, perSocketPerSecond] of [
      [`at ${DEFAULT_EVENTS_PER_SECOND} signals a second per socket`, DEFAULT_EVENTS_PER_SECOND],
      ['as fast as acks come', undefined],
    ] as const) {
      let peak = 0;
      const from = Date.now();
      const cpuBefore = await treeCpuMs(child.pid!);
      const relay = await drive({
        sockets,
        addresses: peers,
        send: relayThroughMesh,
        seconds: DURATION_S,
        window: 4,
        perSocketPerSecond,
        during: async () => {
          for (const end = performance.now() + DURATION_S * 1000; performance.now() < end;) {
            peak = Math.max(peak, mib(await tree(child.pid!)));
            await new Promise((resolve) => setTimeout(resolve, 250));
          }
        },
      });
      const cpuMs = (await treeCpuMs(child.pid!)) - cpuBefore;
      const during = await samples(probeFile, from, Date.now());
      loads.push({
        name,
        lines: [
          `  under 50 relaying sockets, ${name} (${relay.perSecond.toFixed(0)} msg/s, p95 ${relay.p95.toFixed(1)} ms, load average ${loadavg()[0]!.toFixed(1)}): peak ${peak.toFixed(0)} MiB`,
          ...breakdown(during, relay.perSecond * DURATION_S, cpuMs),
        ],
      });
    }
    sockets.forEach((socket) => socket.disconnect());
    const figures = MODES.flatMap((mode) => [new JoinFigures(2, mode), new JoinFigures(8, mode)]);
    const averages: number[] = [];
    const pool = ROUNDS > 0 && MODES.includes('processes') ? await WeriftPeerProcesses.start(8) : null;
    try {
      for (let round = 0; round < ROUNDS; round++)
        for (const mode of MODES)
          for (const count of [2, 8]) {
            averages.push(loadavg()[0]!);
            const result = await joinRoundIn(mode, pool, url, count, () => treeCpuMs(child.pid!));
            figures.find((f) => f.mode === mode && f.count === count)!.add(result);
          }
    } finally {
      await pool?.stop();
    }
    const afterJoins = mib(await tree(child.pid!));
    console.log(`\n${label} (${command.join(' ')})`);
    console.log(`  start to healthy: ${startSeconds.toFixed(2)} s`);
    // The sum of RSS counts a page the tree's processes share (npm and the server are both node: the same binary's
    // code) once per process; PSS divides it among them (and any other process mapping it, another node on the
    // machine included), private pages are each process's alone: the tree's own memory lies between the sums of
    // private and of RSS, and PSS is the usual estimate of it.
    console.log(
      `  idle, whole tree: resident pages counted once ${idleUnique === null ? '(root only)' : `${idleUnique.toFixed(0)} MiB`}; sums of RSS ${mib(idle).toFixed(0)}, PSS ${mib(idle, 'pssKiB').toFixed(0)}, private ${mib(idle, 'privateKiB').toFixed(0)} MiB`,
    );
    for (const p of idle)
      console.log(
        `    RSS ${(p.rssKiB / 1024).toFixed(0).padStart(4)}, PSS ${(p.pssKiB / 1024).toFixed(0).padStart(4)}, private ${(p.privateKiB / 1024).toFixed(0).padStart(4)} MiB  ${p.command.slice(0, 80)}`,
      );
    for (const load of loads) for (const line of load.lines) console.log(line);
    if (ROUNDS > 0) {
      console.log(
        `  joins: ${ROUNDS} rounds, load average (1 min) ${Math.min(...averages).toFixed(1)} to ${Math.max(...averages).toFixed(1)}`,
      );
      for (const figure of figures)
        for (const line of figure.lines(quantile, figure.count === 8)) console.log(`  ${line}`);
      console.log(`  after the joins: ${afterJoins.toFixed(0)} MiB`);
    }
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
  if (NPM_START) await measure('npm start', ['npm', 'start'], path.join(dir, 'data'));
  await measure('one process', [process.execPath, 'scripts/start.mjs'], path.join(dir, 'data'));
} finally {
  await rm(dir, { recursive: true, force: true });
}
