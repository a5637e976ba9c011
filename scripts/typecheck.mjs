// @ts-check
// `npm run typecheck`: the four TypeScript projects (tsconfig.json names them; it checks nothing itself), as many at a
// time as there are cores. Each `tsc` is one thread, so on two cores two at a time take half as long as one after
// another. Each project's messages are printed together once it is done; the exit code is 1 if any project failed.
// Usage: node scripts/typecheck.mjs [project ...] (tsconfig.<project>.json; all four when none is named).
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** The longest first (e2e includes the server's sources), so that the last two end close together. */
const PROJECTS = ['e2e', 'node', 'client', 'worker'];

/** @param {string} project @returns {Promise<boolean>} */
function check(project) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [TSC, '--noEmit', '-p', `tsconfig.${project}.json`], { cwd: ROOT });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', (error) => {
      output += `${error.message}\n`;
    });
    child.on('close', (code) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(
        `tsc -p tsconfig.${project}.json: ${code === 0 ? 'ok' : 'failed'} (${seconds} s)\n${output}`,
      );
      resolve(code === 0);
    });
  });
}

const named = process.argv.slice(2);
const unknown = named.filter((project) => !PROJECTS.includes(project));
if (unknown.length) {
  console.error(`unknown project ${unknown.join(', ')}: one of ${PROJECTS.join(', ')}`);
  process.exit(2);
}
const queue = named.length ? [...named] : [...PROJECTS];
let failed = false;
await Promise.all(
  Array.from({ length: Math.min(queue.length, Math.max(1, availableParallelism())) }, async () => {
    for (let project = queue.shift(); project; project = queue.shift()) if (!(await check(project))) failed = true;
  }),
);
process.exit(failed ? 1 : 0);
