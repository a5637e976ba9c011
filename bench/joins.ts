// Only the join half of bench/footprint.ts, quicker to repeat while working on joins (issue 16):
//   npx tsx bench/joins.ts     # BENCH_ROUNDS=5, BENCH_PEERS=8, BENCH_COMPILED=1 to run dist-server (build it first)
// Starts the real server (its sources through tsx, or the compiled bundle) on a fresh DATA_DIR, then runs ROUNDS
// rounds of PEERS headless werift peers joining the global room at once (bench/werift-joins.ts) and prints, per peer,
// the time from its join ack to a data channel open with every other peer, and the phases of every link.
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../tests/support/server-process.ts';
import { RELAY_LOAD_LIMITS, quantile } from './relay-load.ts';
import { PHASES, type Phases, weriftJoinRound } from './werift-joins.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PEERS = Number(process.env.BENCH_PEERS ?? 8);

const dataDir = await mkdtemp(path.join(tmpdir(), 'mesh-joins-'));
const server = await startServer({ DATA_DIR: dataDir, ...RELAY_LOAD_LIMITS }, 120_000, {
  compiled: process.env.BENCH_COMPILED === '1',
});
try {
  const durations: number[] = [];
  const phases = Object.fromEntries(PHASES.map((phase) => [phase, [] as number[]])) as Phases;
  const loads: number[] = [];
  let restarts = 0;
  // One warm-up round (the server's and werift's modules compiled, the first guests written) not counted.
  await weriftJoinRound(server.url, 2);
  for (let round = 0; round < ROUNDS; round++) {
    loads.push(loadavg()[0]!);
    const result = await weriftJoinRound(server.url, PEERS);
    durations.push(...result.durations);
    restarts += result.restarts;
    for (const phase of PHASES) phases[phase].push(...result.phases[phase]);
    const p95 = quantile(result.durations, 0.95);
    console.log(
      `round ${round + 1}: p50 ${quantile(result.durations, 0.5).toFixed(0)} ms, p95 ${p95.toFixed(0)} ms, ${result.restarts} watchdog restarts`,
    );
  }
  const format = (ms: number) => (Number.isFinite(ms) ? `${ms.toFixed(0)} ms` : 'over 30 s');
  console.log(
    `\n${PEERS} werift peers joining at once, ${ROUNDS} rounds, load average ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)}`,
  );
  console.log(
    `  join ack to all channels open (${durations.length} samples, ${durations.filter((ms) => !Number.isFinite(ms)).length} not all open after 30 s): p50 ${format(quantile(durations, 0.5))}, p95 ${format(quantile(durations, 0.95))}`,
  );
  console.log(`  watchdog restarts (re-sent offers and ICE restarts), all links: ${restarts}`);
  console.log(`  phases (${phases['making the offer'].length} links), p50 / p95:`);
  for (const phase of PHASES)
    console.log(
      `    ${phase.padEnd(52)} ${quantile(phases[phase], 0.5).toFixed(0).padStart(5)} / ${quantile(phases[phase], 0.95).toFixed(0).padStart(5)} ms`,
    );
} finally {
  server.child.kill('SIGTERM');
  await server.exited;
  await rm(dataDir, { recursive: true, force: true });
}
