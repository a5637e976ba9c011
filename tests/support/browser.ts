// Headless Debian Chromium through playwright-core, and a production build of the client for it to load.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Browser, type BrowserContext, type BrowserContextOptions, type Page, chromium } from 'playwright-core';
import type {
  BackendPreference,
  EngineMessage,
  EngineModel,
  EngineReply,
  SamplingInput,
} from '../../src/shared/engine-protocol.ts';
import { CLIENT_INPUTS, hashInputs } from '../../scripts/build.mjs';
import { ROOT } from './server-process.ts';

const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * `webgpu`: SwiftShader's WebGPU adapter (no GPU here, but a real WebGPU implementation);
 * `no-gpu`: `--disable-gpu`, so `navigator.gpu` offers no adapter and the engine must fall back to WASM.
 * `extraArgs`: more command-line flags (a benchmark's V8 flags, `--js-flags=...`).
 */
export function launchChromium(mode: 'webgpu' | 'no-gpu', extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [...BASE_FLAGS, ...modeFlags(mode), ...extraArgs],
  });
}

function modeFlags(mode: 'webgpu' | 'no-gpu'): string[] {
  return mode === 'webgpu' ? ['--enable-unsafe-webgpu'] : ['--disable-gpu'];
}

/**
 * Chromium with a profile kept in `userDataDir` (service worker, caches, IndexedDB, cookies), as a person's browser
 * keeps them between visits: closing the context closes the browser, and launching again on the same folder reopens it.
 */
export function launchPersistentChromium(
  userDataDir: string,
  mode: 'webgpu' | 'no-gpu',
  options: BrowserContextOptions = {},
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [...BASE_FLAGS, ...modeFlags(mode)],
    viewport: { width: 1280, height: 900 },
    ...options,
  });
}

/**
 * A production build of the app (`vite build`, with `buildId` as its build id) copied into `outDir`; returns the URL
 * path of the inference worker bundle. Builds are kept in the system's temporary folder under a hash of the client's
 * sources and the build id, so the browser test files of one run (and of later runs on unchanged sources) build the
 * client once, not once each: about 15 s a file on two cores. A file that asks while another builds the same one
 * waits for that build rather than making its own. The default build id is the one the update tests
 * (tests/support/offline-flow.ts, tests/e2e/pwa.test.ts) first visit, so that a run builds the app twice in all: that
 * one, and the newer build (`two`) they publish while it is open.
 */
export async function buildClient(outDir: string, buildId = 'one'): Promise<{ workerPath: string }> {
  const key = createHash('sha256')
    .update(await hashInputs(CLIENT_INPUTS))
    .update(`\0${buildId}`)
    .digest('hex')
    .slice(0, 24);
  const kept = path.join(tmpdir(), 'mesh-test-client-builds', key);
  await mkdir(path.dirname(kept), { recursive: true });
  while (!existsSync(path.join(kept, 'index.html'))) {
    const release = await buildLock(`${kept}.lock`);
    if (!release) {
      // Another file builds this one now: wait for it to finish (or give up, when it fails or its process died).
      await new Promise((resolve) => setTimeout(resolve, 250));
      continue;
    }
    try {
      if (existsSync(path.join(kept, 'index.html'))) break;
      const staging = await mkdtemp(`${kept}.building-`);
      try {
        await viteBuild(staging, buildId);
        await rename(staging, kept).catch((error: NodeJS.ErrnoException) => {
          // A build of the same sources got there first (one begun before this lock existed): use that one.
          if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
        });
      } finally {
        await rm(staging, { recursive: true, force: true });
      }
    } finally {
      await release();
    }
  }
  await rm(outDir, { recursive: true, force: true });
  await cp(kept, outDir, { recursive: true });
  const worker = (await readdir(path.join(outDir, 'assets'))).find((file) => /^inference\.worker-.*\.js$/.test(file));
  if (!worker) throw new Error('the build has no inference worker bundle');
  return { workerPath: `/assets/${worker}` };
}

/**
 * Takes the lock file `file` (holding this process's id) and returns its release, or null while another live
 * process holds it. A lock left by a process that has gone is taken over.
 */
async function buildLock(file: string): Promise<(() => Promise<void>) | null> {
  try {
    await writeFile(file, String(process.pid), { flag: 'wx' });
    return () => rm(file, { force: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const holder = Number(await readFile(file, 'utf8').catch(() => ''));
  if (holder ? processAlive(holder) : await youngerThan(file, 10_000)) return null;
  // Its process has gone (or it never wrote its id): the next try takes the lock.
  await rm(file, { force: true });
  return null;
}

/** Whether `file` was last written less than `ms` ago (a file just made, its content not written yet). */
async function youngerThan(file: string, ms: number): Promise<boolean> {
  const modified = await stat(file).then(
    (stats) => stats.mtimeMs,
    () => 0,
  );
  return Date.now() - modified < ms;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * `vite build` in a child process (an in-process build leaves threads behind that slowed onnxruntime-node in the same
 * process by a third).
 */
async function viteBuild(outDir: string, buildId: string): Promise<void> {
  const vite = path.join(ROOT, 'node_modules/vite/bin/vite.js');
  await promisify(execFile)(
    process.execPath,
    [vite, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn', '--sourcemap', 'false'],
    {
      cwd: ROOT,
      // vitest sets NODE_ENV=test, which would make Vite build a development bundle (no service worker).
      env: { ...process.env, NODE_ENV: 'production', MESH_BUILD_ID: buildId },
    },
  );
}

export interface WorkerRun {
  ready: Extract<EngineReply, { type: 'ready' | 'error' }>;
  complete?: Extract<EngineReply, { type: 'complete' | 'error' }>;
  tokens: number[];
  phases: string[];
}

/** Drives the real worker bundle with protocol messages, from inside the page. */
export async function runWorker(
  page: Page,
  workerPath: string,
  model: EngineModel,
  backend: BackendPreference,
  messages: EngineMessage[],
  sampling: SamplingInput,
): Promise<WorkerRun> {
  // Under tsx (the benchmarks), esbuild's keepNames wraps functions in `__name(...)`, which the page lacks.
  await page.evaluate('globalThis.__name ??= (fn) => fn');
  return page.evaluate(
    async ({ workerPath, model, backend, messages, sampling }) => {
      // Runs in the page (the test's tsconfig has no DOM types, hence the local shape of Worker).
      interface PageWorker {
        postMessage(message: unknown): void;
        addEventListener(type: 'message', listener: (event: { data: EngineReply }) => void): void;
        terminate(): void;
      }
      const WorkerClass = (
        globalThis as unknown as { Worker: new (url: string, options: { type: 'module' }) => PageWorker }
      ).Worker;
      const worker = new WorkerClass(workerPath, { type: 'module' });
      const replies: EngineReply[] = [];
      const waiting = new Map<string, (reply: EngineReply) => void>();
      worker.addEventListener('message', (event) => {
        replies.push(event.data);
        if (['ready', 'complete', 'error'].includes(event.data.type)) waiting.get(event.data.requestId)?.(event.data);
      });
      const until = (requestId: string) => new Promise<EngineReply>((resolve) => waiting.set(requestId, resolve));
      const loaded = until('load');
      worker.postMessage({ type: 'load', requestId: 'load', model, backend });
      const ready = (await loaded) as WorkerRun['ready'];
      let complete: WorkerRun['complete'];
      if (ready.type === 'ready') {
        const done = until('gen');
        worker.postMessage({ type: 'generate', requestId: 'gen', messages, sampling });
        complete = (await done) as WorkerRun['complete'];
      }
      worker.terminate();
      return {
        ready,
        complete,
        tokens: replies.flatMap((r) => (r.type === 'token' ? [r.tokenId] : [])),
        phases: [...new Set(replies.flatMap((r) => (r.type === 'progress' ? [r.phase] : [])))],
      };
    },
    { workerPath, model, backend, messages, sampling },
  );
}

/**
 * One long-lived worker in the page, as the app keeps one: `load` starts it and loads `model`; each `generate` runs
 * one answer on it (the engine starts each answer afresh); `close` ends it. For measuring what people get, where a
 * fresh worker per answer would also measure start-up.
 */
export async function workerSession(page: Page, workerPath: string) {
  await page.evaluate('globalThis.__name ??= (fn) => fn');
  const request = <T extends EngineReply['type']>(message: Record<string, unknown>, until: T[]) =>
    page.evaluate(
      async ({ workerPath, message, until }) => {
        interface PageWorker {
          postMessage(message: unknown): void;
          addEventListener(type: 'message', listener: (event: { data: EngineReply }) => void): void;
          removeEventListener(type: 'message', listener: (event: { data: EngineReply }) => void): void;
          terminate(): void;
        }
        const scope = globalThis as unknown as {
          Worker: new (url: string, options: { type: 'module' }) => PageWorker;
          __benchWorker?: PageWorker;
        };
        scope.__benchWorker ??= new scope.Worker(workerPath, { type: 'module' });
        const worker = scope.__benchWorker;
        return new Promise<EngineReply>((resolve) => {
          const listener = (event: { data: EngineReply }) => {
            if (event.data.requestId !== message.requestId || !until.includes(event.data.type as never)) return;
            worker.removeEventListener('message', listener);
            resolve(event.data);
          };
          worker.addEventListener('message', listener);
          worker.postMessage(message);
        });
      },
      { workerPath, message, until: until as string[] },
    ) as Promise<Extract<EngineReply, { type: T | 'error' }>>;
  let id = 0;
  return {
    load: (model: EngineModel, backend: BackendPreference, threads?: number) =>
      request({ type: 'load', requestId: `load-${++id}`, model, backend, ...(threads ? { threads } : {}) }, [
        'ready',
        'error',
      ]),
    generate: (messages: EngineMessage[], sampling: SamplingInput) =>
      request({ type: 'generate', requestId: `gen-${++id}`, messages, sampling }, ['complete', 'error']),
    close: () =>
      page.evaluate(() => {
        const scope = globalThis as unknown as { __benchWorker?: { terminate(): void } };
        scope.__benchWorker?.terminate();
        delete scope.__benchWorker;
      }),
  };
}

/**
 * A new browser context signed in as a guest named `displayName` (the app would otherwise pick "Guest 1234"). The
 * guest is made on a page of the origin that is not the app (`/api/health`), so the app cannot make its own meanwhile.
 */
export function guestPage(
  browser: Browser,
  origin: string,
  displayName: string,
  options: BrowserContextOptions = {},
): Promise<Page> {
  return signedInPage(browser, origin, 'auth.guest', { displayName }, options);
}

/**
 * A new browser context signed up as the new account `username` (server downloads and other account-only screens
 * need one), on the origin's health page, as `guestPage` signs in a guest.
 */
export function accountPage(
  browser: Browser,
  origin: string,
  username: string,
  options: BrowserContextOptions = {},
): Promise<Page> {
  return signedInPage(browser, origin, 'auth.signup', { username, password: 'correct horse battery' }, options);
}

/** A new context's page on `/api/health` that has called `procedure` with `input` from the page (its cookie kept). */
async function signedInPage(
  browser: Browser,
  origin: string,
  procedure: 'auth.guest' | 'auth.signup',
  input: Record<string, string>,
  options: BrowserContextOptions,
): Promise<Page> {
  const page = await (await browser.newContext(options)).newPage();
  await page.goto(`${origin}/api/health`);
  const status = await page.evaluate(
    async ({ procedure, input }) => {
      const response = await fetch(`/api/trpc/${procedure}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(input),
      });
      return response.status;
    },
    { procedure, input },
  );
  if (status !== 200) throw new Error(`${procedure} as ${JSON.stringify(Object.values(input)[0])} answered ${status}`);
  return page;
}

/** Whether the document is wider than the viewport: the page scrolls sideways (a phone layout must never). */
export function scrollsSideways(page: Page): Promise<boolean> {
  return page.evaluate(() => {
    // Runs in the page (the Node tests' tsconfig has no DOM types).
    const root = (
      globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }
    ).document.documentElement;
    return root.scrollWidth > root.clientWidth;
  });
}
