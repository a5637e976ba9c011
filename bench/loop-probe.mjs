// @ts-check
// Loaded into the server by bench/signaling.ts (NODE_OPTIONS=--import=<this file>, BENCH_LOOP_PROBE=<a file>): every
// TICK_MS it appends one line, `epoch ms, how late this tick fired (ms), event-loop utilisation since the last line`,
// so that the bench can tell how busy the server's one thread was while pages joined, and how long an event arriving
// then waited for it; and when each offer and answer passed through the relay (below). Only the server writes
// (src/server/index.ts under tsx, or scripts/start.mjs).
import { appendFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Session } from 'node:inspector';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const TICK_MS = 20;
const file = process.env.BENCH_LOOP_PROBE;
/** A folder: a CPU profile of the whole run is written there when the server is told to stop (SIGTERM). */
const profileDir = process.env.BENCH_SERVER_PROFILE;

if (file && /(src[/\\]server[/\\]index\.ts|scripts[/\\]start\.mjs)$/.test(process.argv[1] ?? '')) {
  writeFileSync(file, '');
  let last = performance.now();
  let lastElu = performance.eventLoopUtilization();
  setInterval(() => {
    const now = performance.now();
    const elu = performance.eventLoopUtilization(lastElu);
    lastElu = performance.eventLoopUtilization();
    const late = Math.max(0, now - last - TICK_MS);
    appendFileSync(
      file,
      `${(performance.timeOrigin + now).toFixed(1)},${late.toFixed(1)},${elu.utilization.toFixed(3)}\n`,
    );
    last = now;
  }, TICK_MS).unref();
  // Every signal's description through the relay: when the server took the `signal:relay` event up and when it
  // emitted the `signal` to its target, by the offer's or answer's ICE username fragment (a second file, `.relay`).
  const { Socket } = createRequire(path.join(process.cwd(), 'package.json'))('socket.io');
  const relayFile = `${file}.relay`;
  writeFileSync(relayFile, '');
  const ufragOf = (/** @type {any} */ data) => /a=ice-ufrag:(\S+)/.exec(data?.description?.sdp ?? '')?.[1];
  const onevent = Socket.prototype.onevent;
  Socket.prototype.onevent = function (/** @type {any} */ packet) {
    const [name, payload] = packet?.data ?? [];
    const ufrag = name === 'signal:relay' && ufragOf(payload?.data);
    if (ufrag) appendFileSync(relayFile, `${Date.now()},in,${payload.data.description.type},${ufrag}\n`);
    return onevent.call(this, packet);
  };
  const emit = Socket.prototype.emit;
  Socket.prototype.emit = function (/** @type {string} */ event, /** @type {any[]} */ ...args) {
    const ufrag = event === 'signal' && ufragOf(args[0]?.data);
    if (ufrag) appendFileSync(relayFile, `${Date.now()},out,${args[0].data.description.type},${ufrag}\n`);
    return emit.call(this, event, ...args);
  };
  if (profileDir) {
    const session = new Session();
    session.connect();
    session.post('Profiler.enable');
    session.post('Profiler.start');
    // The profile's clock is the process's own: this epoch ms for its start lets a reader cut out the bench's windows.
    const startEpochMs = Date.now();
    process.once('SIGTERM', () =>
      // An in-process session answers at once, before the server's own SIGTERM handler lets the process end.
      session.post('Profiler.stop', (error, result) => {
        if (!error)
          writeFileSync(
            path.join(profileDir, `server-${process.pid}.cpuprofile`),
            JSON.stringify({ ...result.profile, startEpochMs }),
          );
      }),
    );
  }
}
