// Only the join half of bench/footprint.ts, quicker to repeat while working on joins (issue 16):
//   npx tsx bench/joins.ts
// Environment:
//   BENCH_ROUNDS=5            rounds of PEERS peers joining at once (one 2-peer warm-up round before, not counted)
//   BENCH_PEERS=8             peers per round
//   BENCH_PEER_PROCESSES=0    0: every werift peer in this bench process (one event loop for all); 1: each peer in a
//                             child process of its own (bench/werift-peer-process.ts), as `npm run peer` runs them;
//                             both: each round once each way, interleaved, for an A/B under the same load
//   BENCH_COMPILED=1          run the compiled server (dist-server; build it first) instead of its sources through tsx
// Starts the real server on a fresh DATA_DIR, then runs the rounds and prints, per peer, the time from its join ack to
// a data channel open with every other peer, the CPU time the peers and the server spent on a round, and the phases
// of every link (bench/werift-joins.ts), over all rounds and then for the first round apart from the others (the
// first round of a process runs werift's code before V8 has optimised it). The load average is printed with the
// figures: on a busy machine read the ratios between modes, not the times.
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../tests/support/server-process.ts';
import { RELAY_LOAD_LIMITS, quantile } from './relay-load.ts';
import { JoinFigures, PHASES, WeriftPeerProcesses, joinModes, joinRoundIn, treeCpuMs } from './werift-joins.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PEERS = Number(process.env.BENCH_PEERS ?? 8);
const MODES = joinModes();

const dataDir = await mkdtemp(path.join(tmpdir(), 'mesh-joins-'));
const server = await startServer({ DATA_DIR: dataDir, ...RELAY_LOAD_LIMITS }, 120_000, {
  compiled: process.env.BENCH_COMPILED === '1',
});
const pool = MODES.includes('processes') ? await WeriftPeerProcesses.start(Math.max(PEERS, 2)) : null;
try {
  const serverCpu = () => treeCpuMs(server.child.pid!);
  const figures = MODES.map((mode) => new JoinFigures(PEERS, mode));
  const firstRounds = MODES.map((mode) => new JoinFigures(PEERS, mode));
  const laterRounds = MODES.map((mode) => new JoinFigures(PEERS, mode));
  const loads: number[] = [];
  // One warm-up round per mode (the server's and werift's modules compiled, the first guests written) not counted.
  for (const mode of MODES) await joinRoundIn(mode, pool, server.url, 2);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, mode] of MODES.entries()) {
      loads.push(loadavg()[0]!);
      const result = await joinRoundIn(mode, pool, server.url, PEERS, serverCpu);
      figures[i]!.add(result);
      (round === 0 ? firstRounds : laterRounds)[i]!.add(result);
      console.log(
        `round ${round + 1}, ${mode}: p50 ${quantile(result.durations, 0.5).toFixed(0)} ms, p95 ${quantile(result.durations, 0.95).toFixed(0)} ms, ${result.restarts} watchdog restarts, CPU peers ${result.peerCpuMs.toFixed(0)} ms / server ${result.serverCpuMs.toFixed(0)} ms`,
      );
    }
  }
  console.log(
    `\n${ROUNDS} rounds of ${PEERS} peers, load average (1 min) ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)}, ${server.url}`,
  );
  for (const [i, figure] of figures.entries()) {
    console.log(`\n${figure.lines(quantile, true).join('\n')}`);
    console.log(firstAndLater(firstRounds[i]!, laterRounds[i]!).join('\n'));
  }
} finally {
  await pool?.stop();
  server.child.kill('SIGTERM');
  await server.exited;
  await rm(dataDir, { recursive: true, force: true });
}

/** The first round beside the later ones: per peer, CPU per round, and each phase, p50 / p95 (ms). */
function firstAndLater(first: JoinFigures, later: JoinFigures): string[] {
  const pair = (values: number[]) =>
    `${quantile(values, 0.5).toFixed(0).padStart(5)} / ${quantile(values, 0.95).toFixed(0).padStart(5)}`;
  const perRound = (figure: JoinFigures, ms: number) => (figure.rounds ? (ms / figure.rounds).toFixed(0) : '-');
  return [
    `  first round against rounds 2 to ${ROUNDS}, p50 / p95 (ms):`,
    `    ${'join ack to every channel open, per peer'.padEnd(54)} ${pair(first.durations)}   ${pair(later.durations)}`,
    `    ${'CPU per round: peers, server'.padEnd(54)} ${perRound(first, first.peerCpuMs).padStart(5)} , ${perRound(first, first.serverCpuMs).padStart(5)}   ${perRound(later, later.peerCpuMs).padStart(5)} , ${perRound(later, later.serverCpuMs).padStart(5)}`,
    ...PHASES.map((phase) => `    ${phase.padEnd(54)} ${pair(first.phases[phase])}   ${pair(later.phases[phase])}`),
  ];
}
