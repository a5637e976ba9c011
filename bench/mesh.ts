// Mesh inference benchmarks (issue 7):
//   npx tsx bench/mesh.ts                 (BENCH_PART=overhead or aggregate runs one half)
// 1. Overhead: one headless peer (its own process, werift) serves the generated benchmark model; a requester in
//    this process asks over a real WebRTC data channel on loopback. Requester-side decode tok/s ÷ the serving
//    engine's own tok/s for the same job (job:done), and ÷ a local run of the same prompt in this process; added
//    time to first token = requester TTFT − the serving engine's TTFT.
// 2. Aggregate: 1, 2 and 4 headless peers (processes) serving 8 requesters that each ask again as soon as an
//    answer ends, for DURATION_S; total tokens/s received, against one peer's.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { RTCPeerConnection } from 'werift';
import { FakeHub } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import type { EngineMessage, EngineModel } from '../src/shared/engine-protocol.ts';
import { EngineGate } from '../src/shared/mesh/engine-gate.ts';
import { DEFAULT_REQUESTER_OPTIONS } from '../src/shared/mesh/job-requester.ts';
import { MeshNode } from '../src/shared/mesh/mesh-node.ts';
import { modelFingerprint } from '../src/shared/schemas/models.ts';
import type { ModelRef } from '../src/shared/peer-protocol.ts';
import { MeshRoom, type MeshSocket } from '../src/shared/rtc/mesh-room.ts';
import type { PeerConnectionLike } from '../src/shared/rtc/peer-link.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { publishModels } from '../tests/support/model-fixtures.ts';
import { downloadModel, guestCookie, signUpCookie, spawnPeer, startServer } from '../tests/support/server-process.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 20);
const RUNS = 3;
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const BENCH_DIR = process.env.BENCH_MODEL_DIR ?? '/tmp/models/mesh/bench';
const MESSAGES: EngineMessage[] = [
  { role: 'user', content: 'Write a long story about a mesh of browsers sharing one small model.' },
];
const SAMPLING = { temperature: 0, topP: 1, maxNewTokens: TOKENS, seed: 1 };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-mesh-'));
if (!existsSync(path.join(BENCH_DIR, 'onnx/model.onnx'))) {
  console.log(`generating the benchmark model into ${BENCH_DIR} ...`);
  await generateRandomModel(BENCH_DIR, BENCH);
}
const hub = new FakeHub();
await hub.start();
const { manifestPath, published } = await publishModels(hub, dir, [
  { id: 'bench', from: BENCH_DIR, contextLength: BENCH.maxPositions },
]);
const server = await startServer({
  DATA_DIR: path.join(dir, 'data'),
  HF_ENDPOINT: hub.origin,
  MANIFEST_PATH: manifestPath,
  CLIENT_DIST_DIR: path.join(dir, 'none'),
});
await downloadModel(server.url, await signUpCookie(server.url, 'bench'), 'bench');
const publishedBench = published.bench?.model;
if (!publishedBench) throw new Error('the benchmark model was not published');
const benchModel: EngineModel = publishedBench;
const cached = (
  (await (await fetch(`${server.url}/api/trpc/manifest.list`)).json()) as {
    result: { data: { id: string; cachedRevision: string | null }[] };
  }
).result.data.find((m) => m.id === 'bench')?.cachedRevision;
if (!cached) throw new Error('the server did not cache the benchmark model');
const revision: string = cached;
const ref: ModelRef = { id: 'bench', sha256: await modelFingerprint(benchModel.repo, revision, benchModel.dtype.wasm) };
const children: ChildProcess[] = [];

/** A headless peer in its own process (`npm run peer`); resolves once it shares. */
function servingPeer(name: string, threads?: number): Promise<ChildProcess> {
  const args = [
    '--server',
    server.url,
    '--room',
    'global',
    '--model',
    'bench',
    '--name',
    name,
    '--cache-dir',
    path.join(dir, 'peer-cache', name),
    ...(threads ? ['--threads', String(threads)] : []),
  ];
  const child = spawnPeer(args);
  children.push(child);
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(' shares ')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`peer ${name} exited with ${code}: ${output}`)));
  });
}

async function stopPeers(): Promise<void> {
  await Promise.all(
    children.splice(0).map(
      (child) =>
        new Promise((resolve) => {
          child.once('exit', resolve);
          child.kill('SIGINT');
        }),
    ),
  );
}

/** A requester in this process: a guest, a socket, a MeshNode with no engine of its own. */
async function requester(name: string) {
  const cookie = await guestCookie(server.url, name);
  const socket: MeshSocket = io(`${server.url}/mesh`, { transports: ['websocket'], extraHeaders: { cookie } });
  await new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(null));
    socket.once('connect_error', reject);
  });
  const node = new MeshNode(
    {
      loaded: () => null,
      generate: () => {
        throw new Error('this requester has no engine');
      },
    },
    new EngineGate(),
    { adapter: 'unknown', requesting: { ...DEFAULT_REQUESTER_OPTIONS, spotCheckRate: 0, stallMs: 60_000 } },
  );
  const room = new MeshRoom(
    socket,
    'global',
    [],
    (config) => new RTCPeerConnection({ iceServers: config.iceServers }) as unknown as PeerConnectionLike,
    node,
  );
  await room.join();
  return {
    node,
    async waitFor(sharing: number) {
      for (let waited = 0; waited < 60_000; waited += 100) {
        if (node.list().filter((peer) => peer.capabilities?.sharing).length >= sharing) return;
        await sleep(100);
      }
      throw new Error(`${name} did not see ${sharing} sharing peers`);
    },
    async close() {
      await room.leave();
      node.close();
      socket.disconnect();
    },
  };
}

async function overhead() {
  // Local baseline first, in this process, while nothing else runs.
  const engine = new InferenceEngine({ modelHost: `${server.url}/models/`, cacheDir: path.join(dir, 'local-cache') });
  await engine.load({ ...benchModel, revision }, 'auto', () => {});
  const local: { tps: number; ttft: number }[] = [];
  for (let run = 0; run <= RUNS; run++) {
    const result = await engine.generate(MESSAGES, SAMPLING, () => {});
    await engine.reset();
    if (run > 0) local.push({ tps: result.tokensPerSecond, ttft: result.ttftMs });
  }
  await engine.unload();

  await servingPeer('S1');
  const asker = await requester('R1');
  await asker.waitFor(1);
  const remote: { tps: number; ttft: number; servedTps: number; servedTtft: number; rtt: number | null }[] = [];
  for (let run = 0; run <= RUNS; run++) {
    const stamps: number[] = [];
    const started = performance.now();
    const job = asker.node.requester.run({
      model: ref,
      messages: MESSAGES,
      sampling: SAMPLING,
      onToken: () => stamps.push(performance.now()),
    });
    const outcome = await job.result;
    const first = stamps[0] ?? started;
    const last = stamps.at(-1) ?? first;
    if (run > 0) {
      remote.push({
        tps: stamps.length > 1 ? ((stamps.length - 1) * 1000) / (last - first) : 0,
        ttft: first - started,
        servedTps: outcome.tokensPerSecond,
        servedTtft: outcome.servedTtftMs,
        rtt: asker.node.list()[0]?.rttMs ?? null,
      });
    }
  }
  await asker.close();
  await stopPeers();
  const localTps = median(local.map((r) => r.tps));
  const remoteTps = median(remote.map((r) => r.tps));
  const servedTps = median(remote.map((r) => r.servedTps));
  console.log(
    `1. overhead, ${TOKENS} greedy tokens of the benchmark model (${BENCH.layers} layers, width ${BENCH.hidden}), median of ${RUNS}:`,
  );
  console.log(
    `   local engine in this process:       ${fmt(localTps)} tok/s, TTFT ${fmt(median(local.map((r) => r.ttft)))} ms`,
  );
  console.log(`   serving peer, its own count:         ${fmt(servedTps)} tok/s`);
  console.log(
    `   requester over WebRTC (werift):      ${fmt(remoteTps)} tok/s, TTFT ${fmt(median(remote.map((r) => r.ttft)))} ms, RTT ${fmt(median(remote.map((r) => r.rtt ?? 0)))} ms`,
  );
  console.log(`   ratio requester / serving peer:      ${fmt(remoteTps / servedTps, 3)}`);
  console.log(`   ratio requester / local run:         ${fmt(remoteTps / localTps, 3)}`);
  console.log(
    `   added TTFT (requester − serving engine, same job): ${fmt(median(remote.map((r) => r.ttft - r.servedTtft)))} ms`,
  );
}

async function aggregate() {
  const askers = await Promise.all(Array.from({ length: 8 }, (_, i) => requester(`A${i}`)));
  const results: { peers: number; tps: number }[] = [];
  // BENCH_THREADS: ONNX Runtime threads per serving peer (default: its own choice, every core).
  const threads = process.env.BENCH_THREADS ? Number(process.env.BENCH_THREADS) : undefined;
  for (const peers of [1, 2, 4]) {
    await Promise.all(Array.from({ length: peers }, (_, i) => servingPeer(`P${peers}-${i}`, threads)));
    await Promise.all(askers.map((asker) => asker.waitFor(peers)));
    let tokens = 0;
    const deadline = performance.now() + DURATION_S * 1000;
    const started = performance.now();
    await Promise.all(
      askers.map(async (asker) => {
        while (performance.now() < deadline) {
          const job = asker.node.requester.run({
            model: ref,
            messages: MESSAGES,
            sampling: SAMPLING,
            onToken: () => tokens++,
          });
          await job.result.catch(() => sleep(200));
        }
      }),
    );
    results.push({ peers, tps: (tokens * 1000) / (performance.now() - started) });
    await stopPeers();
    // The requesters hear the peers leave before the next round.
    await sleep(1000);
  }
  await Promise.all(askers.map((asker) => asker.close()));
  const one = results[0]?.tps ?? 1;
  console.log(
    `2. aggregate: 8 requesters asking back to back for ${DURATION_S} s, ${TOKENS}-token greedy answers, ${threads ?? 'default'} ORT threads per peer:`,
  );
  for (const { peers, tps } of results)
    console.log(
      `   ${peers} peer${peers === 1 ? ' ' : 's'}: ${fmt(tps)} tok/s in all, ${fmt(tps / one, 2)}× one peer (goal ${fmt(0.9 * peers, 1)}× on ${peers} free cores)`,
    );
}

try {
  const part = process.env.BENCH_PART ?? 'all';
  if (part !== 'aggregate') await overhead();
  if (part !== 'overhead') await aggregate();
} finally {
  await stopPeers();
  server.child.kill('SIGTERM');
  await server.exited;
  await hub.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
