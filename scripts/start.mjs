// @ts-check
// `npm start` and `npm run serve`: run the compiled server (dist-server/index.js) in this one node process, on
// NODE_ENV=production unless set. `npm start` first builds the client and the server if their sources changed
// since their last build (scripts/build.mjs, in a child process that exits before the server starts, so its memory
// is not the server's); `--no-build` (npm run serve) runs what was built.
import { spawn } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SERVER_BUNDLE } from './build.mjs';

const buildScript = fileURLToPath(new URL('./build.mjs', import.meta.url));

if (!process.argv.includes('--no-build')) {
  const code = await new Promise((resolve) => {
    const child = spawn(process.execPath, [buildScript, '--if-stale'], { stdio: 'inherit' });
    child.on('exit', (exitCode, signal) => resolve(exitCode ?? signal));
  });
  if (code !== 0) process.exit(typeof code === 'number' ? code : 1);
} else if (!existsSync(SERVER_BUNDLE)) {
  console.error('The server is not built (dist-server/index.js): run `npm run build`, or `npm start`, which builds');
  process.exit(1);
}

// Before any WebAssembly is compiled: baseline (Liftoff) code only. V8 would also compile PGlite's 9 MB of
// Postgres, and Prisma's query compiler, a second time optimised, which costs about 40 MiB resident and, on a small
// machine, CPU when the server starts; bench/pglite.ts measured no loss of queries per second (bench/README.md).
setFlagsFromString('--liftoff-only');
// V8 lets the old space grow to up to about four times what was live after its last full collection before it collects
// again; under a busy relay it fills with short-lived objects promoted from the young generation, so the peak grew
// with the relay's rate. With 50% the old space is collected at half again its live size: 50 sockets relaying as
// fast as acks come for 60 s (23 000 msg/s) peaked at 274 MiB against 425, with the same server CPU per message
// (42.0 against 41.1 µs) and 185 ms of mark-compacts in the minute (bench/README.md, issue 16). V8 reads it at every
// collection, so setting it here applies.
setFlagsFromString('--heap-growing-percent=50');
process.env.NODE_ENV ??= 'production';
await import(pathToFileURL(SERVER_BUNDLE).href);
