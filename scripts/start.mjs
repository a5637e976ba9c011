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
process.env.NODE_ENV ??= 'production';
await import(pathToFileURL(SERVER_BUNDLE).href);
