// Which ONNX Runtime Web build decodes fastest on WASM, and what reusing its output arrays is worth (issue 19):
//   npx tsx bench/ort-builds.ts          (BENCH_TOKENS=128, BENCH_ROUNDS=3)
// The app's worker imports `onnxruntime-web/webgpu` (as transformers.js does), whose WebAssembly is built with
// asyncify so that WebGPU calls can await; a device without WebGPU runs the same build on its WASM backend. The package
// also ships a plain WASM build (`ort.wasm.min.mjs`) and a JSPI one (`ort.jspi.min.mjs`, JavaScript Promise
// Integration in place of asyncify). Each build in turn, in headless Chromium on a blank page of a bare static server
// (no app, no service worker), runs the same greedy decode loop on the generated benchmark model (8 layers, width
// 512, float32; bench/engine.ts's bare loop: KV cache, one thread, from a prompt as long as bench/engine.ts's chat
// prompt): tokens a second of each build's answers after a first one, rounds interleaved so that a drift of the
// machine's load lands on every build. A fourth variant is the app's build with its output line rewritten as the
// app's worker has it (scripts/ort-output-arrays.ts), output arrays handed out on reused buffers.
import { createReadStream, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { rewriteOrtOutputs } from '../scripts/ort-output-arrays.ts';
import { OUTPUT_HOOK } from '../src/worker/output-arrays.ts';
import { launchChromium } from '../tests/support/browser.ts';
import { BENCH, BENCH_DIR, ensureBenchModel } from './bench-model.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ANSWERS = 4;
const ORT_DIST = path.join(import.meta.dirname, '..', 'node_modules', 'onnxruntime-web', 'dist');
const REUSED = 'ort.webgpu.reused.mjs';
/**
 * BENCH_GRAPH_LEVELS=disabled,basic,extended,all compares ONNX Runtime's graph optimisation levels instead, each on
 * the app worker's build (ONNX Runtime Web's default, and the app's, is `all`).
 */
const LEVELS = process.env.BENCH_GRAPH_LEVELS?.split(',').filter(Boolean) ?? [];
const BUILDS: { name: string; entry: string; level?: string }[] = LEVELS.length
  ? LEVELS.map((level) => ({ name: `graph optimisation ${level}, outputs on reused buffers`, entry: REUSED, level }))
  : [
      { name: 'webgpu (asyncify; what the app loads)', entry: 'ort.webgpu.min.mjs' },
      { name: 'wasm (plain)', entry: 'ort.wasm.min.mjs' },
      { name: 'jspi', entry: 'ort.jspi.min.mjs' },
      { name: "webgpu, outputs on reused buffers (the app's worker)", entry: REUSED },
    ];
/** About bench/engine.ts's chat prompt (87 tokens on the benchmark model): the KV copied out each step grows from it. */
const PROMPT_TOKENS = 89;

await ensureBenchModel();

const TYPES: Record<string, string> = { '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const server = createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const file = url.pathname.startsWith('/ort/')
    ? path.join(ORT_DIST, path.basename(url.pathname))
    : url.pathname === '/model.onnx'
      ? path.join(BENCH_DIR, 'onnx/model.onnx')
      : null;
  // Cross-origin isolated, as the app is.
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
  if (url.pathname === `/ort/${REUSED}`) {
    const version = (JSON.parse(readFileSync(path.join(ORT_DIST, '..', 'package.json'), 'utf8')) as { version: string })
      .version;
    const code = rewriteOrtOutputs(readFileSync(path.join(ORT_DIST, 'ort.webgpu.min.mjs'), 'utf8'), version);
    response.writeHead(200, { ...headers, 'Content-Type': 'text/javascript' }).end(code);
    return;
  }
  if (url.pathname === '/') {
    response.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end('<!doctype html><title>ort</title>');
    return;
  }
  if (!file) {
    response.writeHead(404).end();
    return;
  }
  stat(file).then(
    (found) => {
      response.writeHead(200, {
        ...headers,
        'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'Content-Length': found.size,
      });
      createReadStream(file).pipe(response);
    },
    () => response.writeHead(404).end(),
  );
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

/** Runs in the page: loads the build, then ANSWERS greedy answers of TOKENS tokens; tok/s of each. */
const pageRun = (entry: string, level?: string) => `(async () => {
  // Reused buffers for the outputs: three sets by size class (one run's outputs, the run before's fed back as
  // inputs, and one to fill), which is all a bare loop that drops each run's outputs after the next one needs.
  const classes = new Map();
  globalThis.${OUTPUT_HOOK} = (session, Type, length) => {
    const bytes = length * Type.BYTES_PER_ELEMENT;
    if (bytes < 65536) return undefined;
    let size = 65536;
    while (size < bytes) size *= 2;
    const ring = classes.get(size) ?? { at: 0, buffers: [] };
    classes.set(size, ring);
    const slot = ring.at++ % (3 * ${BENCH.layers * 2 + 1});
    ring.buffers[slot] ??= new ArrayBuffer(size);
    return new Type(ring.buffers[slot], 0, length);
  };
  const ort = await import('/ort/${entry}');
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = '/ort/';
  const model = new Uint8Array(await (await fetch('/model.onnx')).arrayBuffer());
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['wasm'],
    ${level ? `graphOptimizationLevel: ${JSON.stringify(level)},` : ''}
  });
  const rates = [];
  for (let answer = 0; answer < ${ANSWERS}; answer++) {
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, ${BENCH.heads}, 0, ${BENCH.hidden / BENCH.heads}]);
    let past = {};
    for (let l = 0; l < ${BENCH.layers}; l++) {
      past['past_key_values.' + l + '.key'] = empty();
      past['past_key_values.' + l + '.value'] = empty();
    }
    let ids = Array.from({ length: ${PROMPT_TOKENS} }, (_, i) => 5 + (i % 200));
    let position = 0;
    const stamps = [];
    for (let step = 0; step < ${TOKENS}; step++) {
      const n = ids.length;
      const out = await session.run({
        ...past,
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(position + n).fill(1n), [1, position + n]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(position + i)), [1, n]),
      });
      const logits = out.logits;
      const vocab = logits.dims[2];
      const data = logits.data;
      let best = 0;
      for (let v = 1; v < vocab; v++) if (data[(n - 1) * vocab + v] > data[(n - 1) * vocab + best]) best = v;
      stamps.push(performance.now());
      past = {};
      for (let l = 0; l < ${BENCH.layers}; l++) {
        past['past_key_values.' + l + '.key'] = out['present.' + l + '.key'];
        past['past_key_values.' + l + '.value'] = out['present.' + l + '.value'];
      }
      position += n;
      ids = [best];
    }
    rates.push(((stamps.length - 1) * 1000) / (stamps.at(-1) - stamps[0]));
  }
  await session.release();
  return rates;
})()`;

const results = new Map<string, number[]>(BUILDS.map((build) => [build.name, []]));
const browser = await launchChromium('no-gpu');
try {
  for (let round = 0; round < ROUNDS; round++)
    for (const build of round % 2 ? [...BUILDS].reverse() : BUILDS) {
      // A fresh context a build: nothing compiled by another build's page is reused.
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(origin);
      const rates = (await page.evaluate(pageRun(build.entry, build.level))) as number[];
      await context.close();
      // The first answer pays WebAssembly's tier-up; the steady state is the rest.
      results.get(build.name)!.push(...rates.slice(1));
      console.log(`round ${round + 1}, ${build.name}: ${rates.map((r) => r.toFixed(1)).join(' ')} tok/s`);
    }
} finally {
  await browser.close();
  server.close();
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const base = median(results.get(BUILDS[0]!.name) ?? []);
console.log(`\n${TOKENS} greedy tokens, one WASM thread, median of answers 2 to ${ANSWERS} over ${ROUNDS} rounds:`);
for (const [name, rates] of results)
  console.log(`  ${name}: ${median(rates).toFixed(1)} tok/s (${(median(rates) / base).toFixed(2)} of the app's build)`);
