// @ts-check
// Builds what `npm start` serves, with plain node (it runs before anything is compiled, hence JavaScript): the
// client with Vite into dist/, the server with esbuild into dist-server/index.js (one ES module; packages stay in
// node_modules, so onnxruntime-node's binaries, PGlite's wasm and Prisma's query compiler load from where npm put
// them). Each build records a hash of its inputs in dist-server/; with --if-stale a build whose inputs did not
// change is skipped. Usage: node scripts/build.mjs [--if-stale] [client] [server] (both when neither is named).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SERVER_BUNDLE = path.join(ROOT, 'dist-server', 'index.js');
const STAMPS = path.join(ROOT, 'dist-server');
const SHARED_INPUTS = ['src/shared', 'package.json', 'package-lock.json', 'tsconfig.base.json', 'scripts/build.mjs'];

/** What the client's build reads (tests/support/browser.ts keys its cache of test builds on them too). */
export const CLIENT_INPUTS = [...SHARED_INPUTS, 'src/client', 'src/worker', 'public', 'index.html', 'vite.config.ts'];

/** @typedef {{ inputs: string[], output: string, build: () => Promise<void> }} Target */

/** @type {Record<'client' | 'server', Target>} */
const TARGETS = {
  client: {
    inputs: CLIENT_INPUTS,
    output: path.join(ROOT, 'dist', 'index.html'),
    build: () => run(path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), ['build', '--logLevel', 'warn']),
  },
  server: {
    // The server bundles the headless peer (its /v1 mesh members, SERVE_MODELS) and with it the engine.
    inputs: [...SHARED_INPUTS, 'src/server', 'src/peer', 'src/worker', 'prisma/schema.prisma'],
    output: SERVER_BUNDLE,
    build: buildServer,
  },
};

async function buildServer() {
  const esbuild = await import('esbuild');
  // Chunks are named by their content's hash: those of an earlier build would pile up.
  await rm(path.join(path.dirname(SERVER_BUNDLE), 'chunks'), { recursive: true, force: true });
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { index: 'src/server/index.ts' },
    outdir: path.dirname(SERVER_BUNDLE),
    // What the server imports only when used (the headless peer with werift and transformers.js, a database
    // driver) goes into chunks of its own, so a start loads none of it: about a second and 60 MiB less.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
    // No source map: production serves none and ships none (docs/SECURITY.md, production hygiene).
    sourcemap: false,
  });
  await esbuild.stop();
}

/** @param {string} script @param {string[]} args */
function run(script, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolve(undefined) : reject(new Error(`${path.basename(script)} failed (${code ?? signal})`)),
    );
  });
}

/** A hash of every input file's path and content (test files excepted: they change no build). */
export async function hashInputs(/** @type {string[]} */ inputs) {
  const hash = createHash('sha256');
  /** @param {string} relative */
  const visit = async (relative) => {
    const absolute = path.join(ROOT, relative);
    const entries = await readdir(absolute, { withFileTypes: true }).catch((/** @type {NodeJS.ErrnoException} */ e) => {
      if (e.code === 'ENOTDIR') return null;
      if (e.code === 'ENOENT') return [];
      throw e;
    });
    if (entries === null) {
      if (/\.test\.tsx?$/.test(relative)) return;
      hash
        .update(`${relative}\0`)
        .update(await readFile(absolute))
        .update('\0');
      return;
    }
    for (const entry of entries.map((e) => e.name).sort()) await visit(path.join(relative, entry));
  };
  for (const input of inputs) await visit(input);
  return hash.digest('hex');
}

/**
 * Builds each named target, or only those whose inputs changed since their last build (or whose output is gone)
 * when `ifStale`; says on stdout what it does and why.
 * @param {{ targets: ('client' | 'server')[], ifStale: boolean, log?: (line: string) => void }} options
 */
export async function build({ targets, ifStale, log = (line) => process.stdout.write(`${line}\n`) }) {
  for (const name of targets) {
    const target = TARGETS[name];
    const stampPath = path.join(STAMPS, `.${name}-inputs`);
    const inputs = await hashInputs(target.inputs);
    const stamp = await readFile(stampPath, 'utf8').catch(() => null);
    if (ifStale && stamp === inputs && existsSync(target.output)) {
      log(`${name}: up to date (sources unchanged since the last build)`);
      continue;
    }
    const why = !ifStale ? 'asked to' : existsSync(target.output) ? 'sources changed' : 'never built';
    log(`${name}: building (${why})...`);
    const started = performance.now();
    await target.build();
    await mkdir(STAMPS, { recursive: true });
    await writeFile(stampPath, inputs);
    log(`${name}: built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const unknown = args.filter((arg) => !['--if-stale', 'client', 'server'].includes(arg));
  if (unknown.length > 0) {
    console.error(
      `Unknown argument ${unknown.join(' ')}; usage: node scripts/build.mjs [--if-stale] [client] [server]`,
    );
    process.exit(2);
  }
  /** @type {('client' | 'server')[]} */
  const named = ['client', 'server'].filter((name) => args.includes(name)).map((name) => /** @type {any} */ (name));
  try {
    await build({ targets: named.length > 0 ? named : ['client', 'server'], ifStale: args.includes('--if-stale') });
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
