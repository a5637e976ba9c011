// Download proxy throughput and memory (issue 3, section 5).
//   npx tsx bench/download-proxy.ts            (BENCH_SIZE_MB=1024 by default)
// A generated file is fetched (a) straight from the fake Hub by a plain streaming client (and (a') the same client
// saving it to a file, for what this machine's disk path alone costs), (b) through the
// proxy into its verified cache (the real server process: resolve, redirect, stream, sha256, fsync, rename),
// (c) back from the cache through /models. Prints (b)/(a) and (c)/(a) and the server's peak RSS growth.
import { createWriteStream } from 'node:fs';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FakeHub, bufferContent, generatedContent } from '../scripts/fake-hub.ts';
import { downloadModel, signUpCookie, startServer } from '../tests/support/server-process.ts';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 1024) * 1024 * 1024;
const MB = 1024 * 1024;

/** GETs a URL (following redirects) and counts the body: discarded, or saved to `file` as `curl -o` would. */
function drain(url: string, file: string | null = null): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (response) => {
        if (
          response.statusCode &&
          response.statusCode >= 300 &&
          response.statusCode < 400 &&
          response.headers.location
        ) {
          response.resume();
          resolve(drain(new URL(response.headers.location, url).toString(), file));
          return;
        }
        let bytes = 0;
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.on('error', reject);
        if (!file) return void response.on('end', () => resolve(bytes));
        pipeline(response, createWriteStream(file, { highWaterMark: MB })).then(() => resolve(bytes), reject);
      })
      .on('error', reject);
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, (performance.now() - start) / 1000];
}

async function memory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** CPU seconds (user + system) a process has used so far, its finished threads included. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 per second)
}

const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-'));
const hub = new FakeHub();
const origin = await hub.start();
const { commit } = await hub.addRepo('bench/big', {
  'config.json': bufferContent('{}'),
  'onnx/model.onnx': generatedContent(SIZE, 11),
});
// A small model downloaded first, so that the database and the download path are warm when memory is measured.
await hub.addRepo('bench/warm', {
  'config.json': bufferContent('{}'),
  'onnx/model.onnx': generatedContent(16 * MB, 12),
});
await writeFile(
  path.join(dir, 'manifest.json'),
  JSON.stringify({
    mode: 'replace',
    models: ['big', 'warm'].map((id) => ({
      id,
      name: id,
      repo: `bench/${id}`,
      revision: 'main',
      task: 'text-generation',
      dtype: { webgpu: 'fp32', wasm: 'fp32' },
      contextLength: 256,
      license: 'mit',
      files: [{ path: 'config.json' }, { path: 'onnx/model.onnx' }],
    })),
  }),
);
const server = await startServer({
  DATA_DIR: dir,
  HF_ENDPOINT: origin,
  MANIFEST_PATH: path.join(dir, 'manifest.json'),
  LOG_LEVEL: 'info',
  CLIENT_DIST_DIR: path.join(dir, 'none'),
});
try {
  const [directBytes, direct] = await timed(() => drain(`${origin}/bench/big/resolve/${commit}/onnx/model.onnx`));
  if (directBytes !== SIZE) throw new Error(`direct download got ${directBytes} bytes`);
  const copy = path.join(dir, 'direct-copy.onnx');
  const [savedBytes, saved] = await timed(() => drain(`${origin}/bench/big/resolve/${commit}/onnx/model.onnx`, copy));
  if (savedBytes !== SIZE) throw new Error(`direct download to a file got ${savedBytes} bytes`);
  await rm(copy);

  const cookie = await signUpCookie(server.url, 'bench');
  await downloadModel(server.url, cookie, 'warm');
  await writeFile(`/proc/${server.child.pid}/clear_refs`, '5'); // the peak (VmHWM) from here on
  const before = await memory(server.child.pid ?? 0);
  const serverCpuBefore = await cpuSeconds(server.child.pid ?? 0);
  const hubCpuBefore = process.cpuUsage();
  const [, proxied] = await timed(() => downloadModel(server.url, cookie, 'big'));
  const serverCpu = (await cpuSeconds(server.child.pid ?? 0)) - serverCpuBefore;
  const hubCpu = process.cpuUsage(hubCpuBefore);
  const afterProxy = await memory(server.child.pid ?? 0);
  await writeFile(`/proc/${server.child.pid}/clear_refs`, '5');
  const beforeServing = await memory(server.child.pid ?? 0);
  const [servedBytes, served] = await timed(() =>
    drain(`${server.url}/models/bench/big/resolve/${commit}/onnx/model.onnx`),
  );
  if (servedBytes !== SIZE) throw new Error(`served ${servedBytes} bytes`);
  const after = await memory(server.child.pid ?? 0);

  const rate = (seconds: number) => SIZE / MB / seconds;
  console.log(`size: ${SIZE / MB} MiB`);
  console.log(`(a) direct from the fake Hub:      ${rate(direct).toFixed(0)} MiB/s`);
  console.log(
    `(a') the same, saved to a file:     ${rate(saved).toFixed(0)} MiB/s  (no hash, no fsync: what curl -o does)`,
  );
  console.log(
    `(b) through the proxy into cache:  ${rate(proxied).toFixed(0)} MiB/s  ratio (b)/(a) = ${(direct / proxied).toFixed(2)} (goal >= 0.9); (b)/(a') = ${(saved / proxied).toFixed(2)}`,
  );
  console.log(
    `(c) served back from the cache:    ${rate(served).toFixed(0)} MiB/s  ratio (c)/(a) = ${(direct / served).toFixed(2)} (goal >= 1.0)`,
  );
  console.log(
    `CPU during (b): server ${serverCpu.toFixed(2)} s, fake Hub and poller ${((hubCpu.user + hubCpu.system) / 1e6).toFixed(2)} s, in ${proxied.toFixed(2)} s on ${availableParallelism()} cores`,
  );
  const growth = (from: { rss: number }, to: { peak: number }) => ((to.peak - from.rss) / MB).toFixed(1);
  console.log(
    `server RSS before (b): ${(before.rss / MB).toFixed(0)} MiB; peak growth during (b): ${growth(before, afterProxy)} MiB, during (c): ${growth(beforeServing, after)} MiB (goal < 64)`,
  );
} finally {
  server.child.kill('SIGTERM');
  await server.exited;
  await hub.stop();
  await rm(dir, { recursive: true, force: true });
}
