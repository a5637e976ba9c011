// @ts-check
// Loaded into the server by bench/footprint.ts (NODE_OPTIONS=--import=<this file>, BENCH_MEMORY_PROBE=<a file>):
// every SAMPLE_MS it appends one JSON line with the process's memory by kind (resident, V8's heap by space, external,
// array buffers) and its garbage collections so far (count and time, minor and major), which the bench reads for
// the peak under load. Only the server itself writes: npm and scripts/build.mjs, which get the same NODE_OPTIONS
// through `npm start`, load it and do nothing. A line is a few hundred bytes, four times a second: small beside what
// it measures.
import { appendFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

const SAMPLE_MS = 250;
const file = process.env.BENCH_MEMORY_PROBE;
const heapProfile = process.env.BENCH_HEAP_PROFILE;

if (file && /scripts[/\\]start\.mjs$/.test(process.argv[1] ?? '')) {
  const gc = { minor: 0, minorMs: 0, major: 0, majorMs: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = /** @type {{ kind?: number }} */ (entry.detail ?? {}).kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minor++;
        gc.minorMs += entry.duration;
      } else {
        gc.major++;
        gc.majorMs += entry.duration;
      }
    }
  }).observe({ entryTypes: ['gc'] });
  const mib = (bytes) => Math.round((bytes / 1048576) * 10) / 10;
  setInterval(() => {
    const usage = process.memoryUsage();
    /** @type {Record<string, number>} */
    const spaces = {};
    /** @type {Record<string, number>} */
    const committed = {};
    for (const space of getHeapSpaceStatistics()) {
      spaces[space.space_name] = mib(space.space_used_size);
      committed[space.space_name] = mib(space.physical_space_size);
    }
    const line = {
      t: Date.now(),
      rss: mib(usage.rss),
      heapTotal: mib(usage.heapTotal),
      heapUsed: mib(usage.heapUsed),
      external: mib(usage.external),
      arrayBuffers: mib(usage.arrayBuffers),
      spaces,
      committed,
      gc: { ...gc, minorMs: Math.round(gc.minorMs), majorMs: Math.round(gc.majorMs) },
    };
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  }, SAMPLE_MS).unref();
}

// With BENCH_HEAP_PROFILE=<a file>: SIGWINCH (ignored by default; the server's close-with-grace takes SIGUSR2) starts V8's sampling heap profiler, counting garbage too (what was
// allocated, not only what is still alive), and the next one writes the profile there (.heapprofile: open it in
// Chrome DevTools' Memory tab, or sum it by function as bench/footprint.ts does).
if (heapProfile && /scripts[/\\]start\.mjs$/.test(process.argv[1] ?? '')) {
  const session = new Session();
  session.connect();
  let sampling = false;
  process.on('SIGWINCH', () => {
    if (!sampling) {
      sampling = true;
      session.post('HeapProfiler.startSampling', {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      return;
    }
    sampling = false;
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (!error) writeFileSync(heapProfile, JSON.stringify(result.profile));
    });
  });
}
