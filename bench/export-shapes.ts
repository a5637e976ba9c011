// Export-shaped tiny models (issue 17; scripts/tiny-model/export-shapes.ts), per variant:
//   npx tsx bench/export-shapes.ts            (BENCH_BROWSER=0 skips Chromium; BENCH_VARIANTS=q4f16,q4 picks variants)
// generation time; download through the real server process from the fake Hub (files derived as transformers.js
// picks them); in Node, the engine's load time, time to first token and the memory of a fresh process that only
// loads the model and answers (RSS before loading, after the answer, and its peak); in headless Chromium, the
// worker's load time and time to first token on WASM and on WebGPU (SwiftShader), a fresh worker each, in a fresh
// browser context, and the memory the worker adds to its page's renderer process (a dedicated worker runs there):
// the renderer's RSS with the page loaded, then its peak (VmHWM) once the worker has answered. WebGPU buffers live in
// the GPU process and are not counted.
import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { FakeHub } from '../scripts/fake-hub.ts';
import { EXPORT_SHAPES, type ExportShapeName, writeExportModel } from '../scripts/tiny-model/export-shapes.ts';
import type { EngineMessage, EngineModel } from '../src/shared/engine-protocol.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { buildClient, launchChromium, runWorker } from '../tests/support/browser.ts';
import {
  ALL_EXPORT_SHAPE_NAMES,
  engineModelFromServer,
  publishExportShapes,
} from '../tests/support/export-fixtures.ts';

/** Every variant, or those BENCH_VARIANTS names. */
const EXPORT_SHAPE_NAMES = process.env.BENCH_VARIANTS
  ? ALL_EXPORT_SHAPE_NAMES.filter((name) => process.env.BENCH_VARIANTS?.split(',').includes(name))
  : ALL_EXPORT_SHAPE_NAMES;
import { downloadModel, signUpCookie, startServer } from '../tests/support/server-process.ts';

const MESSAGES: EngineMessage[] = [
  { role: 'system', content: 'You answer in riddles.' },
  { role: 'user', content: 'Now is the winter of our discontent' },
];
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: 16 };
const MB = 1024 * 1024;
const mb = (n: number) => (n / MB).toFixed(0);

/** Process ids of Chromium's renderer processes (CDP SystemInfo.getProcessInfo). */
async function renderers(browser: Browser): Promise<number[]> {
  const session = await browser.newBrowserCDPSession();
  try {
    const { processInfo } = (await session.send('SystemInfo.getProcessInfo')) as {
      processInfo: { type: string; id: number }[];
    };
    return processInfo.filter((info) => info.type === 'renderer').map((info) => info.id);
  } finally {
    await session.detach();
  }
}

interface NodeFigures {
  loadMs: number;
  ttftMs: number;
  rssBefore: number;
  rssAfter: number;
  peak: number;
}

async function status(pid: number | 'self' = 'self'): Promise<{ rss: number; peak: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** In a fresh child process: load `model` from `origin`, answer once, report. */
async function child(origin: string, model: EngineModel, cacheDir: string): Promise<NodeFigures> {
  const before = await status();
  const engine = new InferenceEngine({ modelHost: `${origin}/models/`, cacheDir });
  const loaded = await engine.load(model, 'auto', () => {});
  const answer = await engine.generate(MESSAGES, GREEDY, () => {});
  const after = await status();
  await engine.unload();
  return { loadMs: loaded.loadMs, ttftMs: answer.ttftMs, rssBefore: before.rss, rssAfter: after.rss, peak: after.peak };
}

function inChild(origin: string, model: EngineModel, cacheDir: string): Promise<NodeFigures> {
  return new Promise((resolve, reject) => {
    const proc = fork(import.meta.filename, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_CHILD: JSON.stringify({ origin, model, cacheDir }) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    proc.once('message', (figures) => resolve(figures as NodeFigures));
    proc.once('exit', (code) => (code ? reject(new Error(`bench child exited with ${code}`)) : undefined));
  });
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-export-shapes-'));
  const hub = new FakeHub();
  await hub.start();
  const generation: Record<string, number> = {};
  for (const name of EXPORT_SHAPE_NAMES) {
    const started = performance.now();
    await writeExportModel(path.join(dir, 'scratch', name), EXPORT_SHAPES[name as ExportShapeName]);
    generation[name] = performance.now() - started;
  }
  const { manifestPath, published } = await publishExportShapes(hub, path.join(dir, 'models'), EXPORT_SHAPE_NAMES);
  const browserWanted = process.env.BENCH_BROWSER !== '0';
  const built = browserWanted ? await buildClient(path.join(dir, 'dist')) : null;
  const server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    CLIENT_DIST_DIR: path.join(dir, 'dist'),
    HF_ENDPOINT: hub.origin,
    MANIFEST_PATH: manifestPath,
  });
  const browser = built ? await launchChromium('webgpu') : null;
  try {
    const cookie = await signUpCookie(server.url, 'bench-export-shapes');
    console.log(
      '| variant | files (bytes) | generate | download | Node load | Node first token | Node RSS before → after (peak) | WASM load / first token | WebGPU load / first token |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const name of EXPORT_SHAPE_NAMES) {
      const model = published[name];
      if (!model) continue;
      const bytes = (
        await Promise.all(model.files.map((f) => readFile(path.join(dir, 'models', name, f)).then((b) => b.length)))
      ).reduce((a, b) => a + b, 0);
      const started = performance.now();
      await downloadModel(server.url, cookie, name);
      const downloadMs = performance.now() - started;
      const engineModel = await engineModelFromServer(server.url, name);
      const node = await inChild(server.url, engineModel, path.join(dir, 'node-cache', name));
      const cells: string[] = [];
      for (const backend of ['wasm', 'auto'] as const) {
        if (!browser || !built) {
          cells.push('not run');
          continue;
        }
        const renderersBefore = await renderers(browser);
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(server.url);
        const renderer = (await renderers(browser)).find((pid) => !renderersBefore.includes(pid));
        const pageOnly = renderer ? await status(renderer) : null;
        const run = await runWorker(page, built.workerPath, engineModel, backend, MESSAGES, GREEDY);
        const withWorker = renderer ? await status(renderer) : null;
        await context.close();
        if (run.ready.type !== 'ready' || run.complete?.type !== 'complete') {
          cells.push(`failed: ${JSON.stringify(run.ready)}`);
          continue;
        }
        const on =
          backend === 'auto' && run.ready.backend !== 'webgpu' ? ` (${run.ready.backend}: ${run.ready.reason})` : '';
        const memory =
          pageOnly && withWorker
            ? `, renderer ${mb(pageOnly.rss)} → peak ${mb(withWorker.peak)} MiB`
            : ', renderer not found';
        cells.push(`${run.ready.loadMs} ms / ${Math.round(run.complete.ttftMs)} ms${memory}${on}`);
      }
      console.log(
        `| ${name} (${model.shape.dtype}) | ${model.files.length} (${(bytes / MB).toFixed(2)} MiB) | ${Math.round(generation[name] ?? 0)} ms | ${Math.round(downloadMs)} ms | ${node.loadMs} ms | ${Math.round(node.ttftMs)} ms | ${mb(node.rssBefore)} → ${mb(node.rssAfter)} MiB (${mb(node.peak)}) | ${cells.join(' | ')} |`,
      );
    }
  } finally {
    await browser?.close();
    server.child.kill('SIGTERM');
    await server.exited;
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.env.BENCH_CHILD) {
  const { origin, model, cacheDir } = JSON.parse(process.env.BENCH_CHILD) as {
    origin: string;
    model: EngineModel;
    cacheDir: string;
  };
  const figures = await child(origin, model, cacheDir);
  process.send?.(figures, undefined, {}, () => process.exit(0));
} else {
  await main();
}
