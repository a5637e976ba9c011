// The OpenAI-compatible API on the mesh (issue 14):
//   npx tsx bench/openai-api.ts
// 1. Route overhead, on two models: the bundled nano model, which decodes at 1000 to 1500 tokens a second on a
//    2-core machine (the worst case: a route's own cost per token is then a large part of a token's time), and the
//    generated benchmark model of bench/engine.ts and bench/mesh.ts (8 layers, width 512: about 100 tokens a second
//    here, a realistic speed), published on a fake Hub and served through the server's catalogue and cache like any
//    catalogue model (BENCH_REALISTIC=0 skips it). Each model has its own headless peer (`npm run peer`, its own
//    process); the same greedy job is asked several times over /v1 streaming (the server's own requester member) and
//    over the requester a browser runs (a requester-only headless peer in this process, as the tRPC/browser route
//    does). Client-side decode tok/s ratio (/v1 ÷ browser route), the per-token time that difference is, and added
//    time to first token (/v1 − browser route), medians. What /v1 costs per token in CPU, which the machine's load
//    moves less than the rates: the server process's CPU time per token over /v1 (from /proc), this process's CPU
//    per token on either route (the `openai` client's parse against the browser route's requester), and chunks per
//    token (a chunk can carry several tokens that reached the server together). Where /v1's time to first token
//    goes: the server's Server-Timing header on each /v1 stream, phase by phase (medians): pre (Fastify's hooks),
//    budget, key, route, chat-budget, fit (the conversation fitted to the context), member, slot, offer (to the
//    peer's accept), token (accept to the first token), and what the client saw beyond their sum (HTTP and SSE
//    both ways). The routes alternate run by run, in ABBA order (BENCH_RUNS runs each; unless set, 41 on the nano
//    model, whose 490-token run lasts a quarter of a second, so that one run's hiccup moves the median little, and 9
//    on the benchmark model, whose run lasts seconds); the ratio is
//    printed of the two medians and as the median of each run's own ratio. The server's main thread while the /v1
//    text streams (from /proc/<pid>/sched, so without the job's records written after the last text): CPU per token
//    and how often the scheduler preempted it.
//    BENCH_PEER_THREADS=<n> gives each serving peer that many ONNX Runtime threads (default: every core).
//    BENCH_PIN=1 pins the serving peers to the last core (one ONNX Runtime thread each unless BENCH_PEER_THREADS) and
//    the server and this process to the others (taskset), as if the peer ran on a machine of its own, which is where
//    a room's peers run: on one 2-core machine shared by all three, the /v1 route's extra process hop otherwise takes
//    its CPU from the peer's ONNX Runtime threads, whose speed the ratio then measures more than the route's.
//    BENCH_SERVER_CPU_PROF=<folder> writes a V8 CPU profile of the server process there (bench/cpu-profile.mjs).
// 2. 16 concurrent /v1 streams from one key through the one server and its nano peer (REQUESTS_IN_FLIGHT_PER_IP=32:
//    they come from one address; MESH_API_WAIT_MS=110000 and CONNECTION_TIMEOUT_MS=120000, since they queue for
//    the peer's two places; BENCH_CONCURRENT_TOKENS each, 64 unless set): answered and refused, wall time, tokens/s
//    received, the server process's CPU seconds and RSS (from /proc, RSS sampled every 100 ms for its peak).
// 3. What SERVE_MODELS costs: the idle RSS of a server with and without SERVE_MODELS=nano-shakespeare
//    (BENCH_IDLE=0 skips it).
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';
import { FakeHub } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { publishModels } from '../tests/support/model-fixtures.ts';
import {
  type ServerProcess,
  downloadModel,
  signUpCookie,
  spawnPeer,
  startServer,
} from '../tests/support/server-process.ts';

const MODEL = 'nano-shakespeare';
const TOKENS = Number(process.env.BENCH_TOKENS ?? 200);
/** Runs per route: BENCH_RUNS, or a count that suits the model's speed (the header says why). */
const runsFor = (model: string) => Number(process.env.BENCH_RUNS ?? (model === MODEL ? 41 : 9));
const STREAMS = 16;
const CONCURRENT_TOKENS = Number(process.env.BENCH_CONCURRENT_TOKENS ?? 64);
const IDLE = process.env.BENCH_IDLE !== '0';
const REALISTIC = process.env.BENCH_REALISTIC !== '0';
// ONNX Runtime threads of each serving peer (its --threads): unset, every core, as `npm run peer` runs by default.
const PIN = process.env.BENCH_PIN === '1';
const PEER_THREADS = process.env.BENCH_PEER_THREADS ?? (PIN ? '1' : undefined);
const CORES = availableParallelism();
if (PIN && CORES < 2) throw new Error('BENCH_PIN needs two cores or more');
/** Every thread of `pid`, and those it starts later, to run on `cpus` only (a taskset list such as `0-2`). */
const pin = (pid: number | undefined, cpus: string) => {
  if (PIN && pid) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
};
// A folder for a V8 CPU profile of the server process (bench/cpu-profile.mjs), written when it exits at the end.
const SERVER_CPU_PROF = process.env.BENCH_SERVER_CPU_PROF;
// The benchmark model of bench/engine.ts and bench/mesh.ts, generated once into BENCH_MODEL_DIR.
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const BENCH_DIR = process.env.BENCH_MODEL_DIR ?? '/tmp/models/mesh/bench';
const messages = [{ role: 'user' as const, content: 'ROMEO:' }];
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function procStats(pid: number): Promise<{ cpuS: number; rssMiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(stat[11]) + Number(stat[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpuS: ticks / 100, rssMiB: Number(rss) / 1024 };
}

/**
 * The server's main thread (its event loop) as the scheduler counts it: CPU milliseconds (µs precision, unlike /proc's
 * 10 ms ticks) and the times it was preempted. Read synchronously, so it can be taken between two chunks of a stream.
 */
function mainThread(pid: number): { cpuMs: number; preempted: number } {
  const sched = readFileSync(`/proc/${pid}/sched`, 'utf8');
  return {
    cpuMs: Number(/se\.sum_exec_runtime\s+:\s+([\d.]+)/.exec(sched)?.[1] ?? Number.NaN),
    preempted: Number(/nr_involuntary_switches\s+:\s+(\d+)/.exec(sched)?.[1] ?? Number.NaN),
  };
}

/** Every this many text chunks, the server's main thread is read again: the last reading before the end closes the window. */
const SCHED_EVERY = 16;

async function apiKey(server: ServerProcess): Promise<string> {
  const cookie = await signUpCookie(server.url, `bench${Date.now() % 100000}`);
  const response = await fetch(`${server.url}/api/trpc/apiKey.create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ name: 'bench' }),
  });
  return ((await response.json()) as { result: { data: { key: string } } }).result.data.key;
}

/**
 * Time to first token and client-side decode tok/s of one stream: the `tokens` after the first over the time from the
 * first text to the last. Over /v1 a chunk may carry several tokens (they reached the server together), so the count
 * is the stream's usage, not its chunks.
 */
function timing(started: number, stamps: number[], tokens: number) {
  const first = stamps[0] ?? started;
  const last = stamps.at(-1) ?? first;
  return { ttftMs: first - started, tokensPerSecond: last > first ? ((tokens - 1) * 1000) / (last - first) : 0 };
}

/** Server-Timing's phases, in milliseconds. */
function serverTiming(header: string | null): Record<string, number> {
  const phases: Record<string, number> = {};
  for (const part of (header ?? '').split(',')) {
    const match = /^\s*([\w-]+);dur=([\d.]+)/.exec(part);
    if (match?.[1]) phases[match[1]] = (phases[match[1]] ?? 0) + Number(match[2]);
  }
  return phases;
}

async function overV1(client: OpenAI, model = MODEL, tokens = TOKENS, serverPid = 0) {
  const started = performance.now();
  const stamps: number[] = [];
  // The server's main thread while the text streams (from the first text chunk to the last reading), apart from the
  // job's records, which are written after the last text and before the last chunk.
  const sched: { at: number; cpuMs: number; preempted: number }[] = [];
  let text = '';
  let usage = 0;
  const { data: stream, response } = await client.chat.completions
    .create({
      model,
      messages,
      temperature: 0,
      seed: 1,
      max_tokens: tokens,
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  // The response's head leaves the server with its first chunk (the role), once the first token is there.
  const headersMs = performance.now() - started;
  let chunks = 0;
  for await (const chunk of stream) {
    // Text chunks, an empty text among them (a token can decode to none), but not the role's.
    if (typeof chunk.choices[0]?.delta.content === 'string' && !chunk.choices[0].delta.role) chunks++;
    const delta = chunk.choices[0]?.delta.content;
    if (delta) {
      stamps.push(performance.now());
      text += delta;
      if (serverPid && (stamps.length - 1) % SCHED_EVERY === 0)
        sched.push({ at: performance.now(), ...mainThread(serverPid) });
    }
    if (chunk.usage) usage = chunk.usage.completion_tokens;
  }
  const first = sched[0];
  const last = sched.at(-1);
  return {
    ...timing(started, stamps, usage),
    streaming:
      first && last && last !== first
        ? { ms: last.at - first.at, cpuMs: last.cpuMs - first.cpuMs, preempted: last.preempted - first.preempted }
        : null,
    headersMs,
    text,
    tokens: usage,
    chunks,
    phases: serverTiming(response.headers.get('server-timing')),
  };
}

async function overRequester(asker: HeadlessPeer, model: string, tokens: number) {
  const node = asker.node;
  if (!node) throw new Error('no node');
  const shared = node.list().flatMap((peer) => peer.capabilities?.models ?? []);
  const ref = shared.find((m) => m.id === model);
  if (!ref) throw new Error(`nobody shares ${model}`);
  const started = performance.now();
  const stamps: number[] = [];
  const job = node.requester.run({
    model: ref,
    messages,
    sampling: { temperature: 0, topP: 0.95, maxNewTokens: tokens, seed: 1 },
    onToken: () => stamps.push(performance.now()),
  });
  const outcome = await job.result;
  return { ...timing(started, stamps, stamps.length), text: outcome.text, tokens: stamps.length };
}

/** A headless peer process sharing `model` in global; resolves once it shares. */
function servingPeer(server: ServerProcess, dir: string, model: string): Promise<ChildProcess> {
  const peer = spawnPeer([
    ...['--server', server.url, '--room', 'global', '--model', model, '--name', `Box-${model}`],
    ...['--cache-dir', path.join(dir, `peer-cache-${model}`)],
    ...(PEER_THREADS ? ['--threads', PEER_THREADS] : []),
  ]);
  pin(peer.pid, String(CORES - 1));
  return new Promise((resolve, reject) => {
    let output = '';
    peer.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('shares')) resolve(peer);
    });
    peer.once('exit', (code) => reject(new Error(`the ${model} peer exited with ${code}: ${output}`)));
  });
}

/** CPU seconds of this process so far. */
const ownCpuS = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

/** Part 1 on one model: alternately over /v1 and over the browser's route, `runsFor(model)` times each after a warm-up. */
async function routeOverhead(
  server: ServerProcess,
  client: OpenAI,
  asker: HeadlessPeer,
  model: string,
  tokens: number,
) {
  const pid = server.child.pid ?? 0;
  const runs = runsFor(model);
  await overV1(client, model, tokens); // warm-up: the server's member joins and connects
  await overRequester(asker, model, tokens);
  const v1: Awaited<ReturnType<typeof overV1>>[] = [];
  const direct: Awaited<ReturnType<typeof overRequester>>[] = [];
  // CPU seconds spent during each route's runs: the server's, and this process's.
  const cpu = { v1: { server: 0, own: 0 }, direct: { server: 0, own: 0 } };
  const measured = async <T>(into: { server: number; own: number }, run: () => Promise<T>): Promise<T> => {
    const [server0, own0] = [(await procStats(pid)).cpuS, ownCpuS()];
    const result = await run();
    into.own += ownCpuS() - own0;
    into.server += (await procStats(pid)).cpuS - server0;
    return result;
  };
  // The routes alternate run by run, and which goes first alternates too (ABBA), so a drift in the machine's load
  // lands on both; each run's ratio is taken against the other route's run beside it.
  for (let run = 0; run < runs; run++) {
    const viaV1 = () => measured(cpu.v1, () => overV1(client, model, tokens, pid));
    const viaRequester = () => measured(cpu.direct, () => overRequester(asker, model, tokens));
    if (run % 2 === 0) {
      v1.push(await viaV1());
      direct.push(await viaRequester());
    } else {
      direct.push(await viaRequester());
      v1.push(await viaV1());
    }
  }
  const pairRatios = v1.map((r, i) => r.tokensPerSecond / (direct[i]?.tokensPerSecond || Number.NaN));
  const same = v1.every((r) => r.text === direct[0]?.text) && direct.every((r) => r.text === direct[0]?.text);
  const v1Rate = median(v1.map((r) => r.tokensPerSecond));
  const directRate = median(direct.map((r) => r.tokensPerSecond));
  const addedTtft = median(v1.map((r) => r.ttftMs)) - median(direct.map((r) => r.ttftMs));
  const v1Tokens = v1.reduce((sum, r) => sum + r.tokens, 0);
  const directTokens = direct.reduce((sum, r) => sum + r.tokens, 0);
  const perToken = (seconds: number, count: number) => ((seconds * 1e6) / Math.max(1, count)).toFixed(0);
  console.log(`route overhead, ${model} (${runs} runs, ${tokens} greedy tokens, identical answers: ${same})`);
  console.log(`  /v1 stream:      ${v1Rate.toFixed(1)} tok/s, TTFT ${median(v1.map((r) => r.ttftMs)).toFixed(1)} ms`);
  console.log(
    `  browser route:   ${directRate.toFixed(1)} tok/s, TTFT ${median(direct.map((r) => r.ttftMs)).toFixed(1)} ms`,
  );
  console.log(
    `  ratio ${(v1Rate / directRate).toFixed(3)} of the medians, ${median(pairRatios).toFixed(3)} median of the ${runs} runs' own (goal >= 0.95; runs: ${pairRatios.map((r) => r.toFixed(2)).join(' ')}), ${(1000 / v1Rate - 1000 / directRate).toFixed(3)} ms more per token over /v1, added TTFT ${addedTtft.toFixed(1)} ms (goal <= 20)`,
  );
  console.log(
    `  CPU per token (µs): server ${perToken(cpu.v1.server, v1Tokens)} over /v1 (${perToken(cpu.direct.server, directTokens)} while the browser route ran); this process ${perToken(cpu.v1.own, v1Tokens)} over /v1 (the openai client), ${perToken(cpu.direct.own, directTokens)} over the browser route (its requester); ${(v1.reduce((sum, r) => sum + r.chunks, 0) / Math.max(1, v1Tokens)).toFixed(2)} /v1 text chunks per token`,
  );
  // Per token while the text streamed: CPU milliseconds over the window's tokens (its length times the run's rate).
  const windows = v1.flatMap((r) =>
    r.streaming ? [{ ...r.streaming, tokens: (r.streaming.ms / 1000) * r.tokensPerSecond }] : [],
  );
  const windowTokens = windows.reduce((sum, w) => sum + w.tokens, 0);
  const windowCpuMs = windows.reduce((sum, w) => sum + w.cpuMs, 0);
  const windowMs = windows.reduce((sum, w) => sum + w.ms, 0);
  console.log(
    `  server's main thread while /v1 text streamed: ${((1000 * windowCpuMs) / Math.max(1, windowTokens)).toFixed(0)} µs CPU per token (${((100 * windowCpuMs) / Math.max(1, windowMs)).toFixed(0)}% of a core), preempted ${(windows.reduce((sum, w) => sum + w.preempted, 0) / Math.max(1, windowTokens)).toFixed(2)} times per token`,
  );
  const names = [...new Set(v1.flatMap((r) => Object.keys(r.phases)))];
  const medians = Object.fromEntries(names.map((name) => [name, median(v1.map((r) => r.phases[name] ?? 0))]));
  const inServer = Object.values(medians).reduce((sum, ms) => sum + ms, 0);
  console.log(
    `  /v1 TTFT by phase (server, medians): ${names.map((name) => `${name} ${medians[name]?.toFixed(1)}`).join(', ')} = ${inServer.toFixed(1)} ms; client-side rest ${(median(v1.map((r) => r.ttftMs)) - inServer).toFixed(1)} ms`,
  );
  // The rest, split: request out and the head back (the client's send, the server's accept and parse before its
  // handler's clock starts, the head's way back and its parse) against the first text chunk after the head.
  const toHead = median(v1.map((r) => r.headersMs - Object.values(r.phases).reduce((sum, ms) => sum + ms, 0)));
  const headToText = median(v1.map((r) => r.ttftMs - r.headersMs));
  console.log(
    `  client-side rest, split (medians): to the response head beyond the server's phases ${toHead.toFixed(1)} ms, head to the first text chunk ${headToText.toFixed(1)} ms`,
  );
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-openai-'));
  const env = { DATA_DIR: path.join(dir, 'data'), CLIENT_DIST_DIR: path.join(dir, 'none') };
  // The benchmark model on a fake Hub, named by a catalogue file that extends the built-in one: the server caches it
  // through its proxy as any catalogue model, and its peer loads it from there, offline.
  const hub = new FakeHub();
  const catalogue: Record<string, string> = {};
  if (REALISTIC) {
    if (!existsSync(path.join(BENCH_DIR, 'onnx/model.onnx'))) {
      console.log(`generating the benchmark model into ${BENCH_DIR} ...`);
      await generateRandomModel(BENCH_DIR, BENCH);
    }
    await hub.start();
    const { manifestPath } = await publishModels(hub, dir, [
      { id: 'bench', from: BENCH_DIR, contextLength: BENCH.maxPositions },
    ]);
    Object.assign(catalogue, { HF_ENDPOINT: hub.origin, MANIFEST_PATH: manifestPath });
  }
  const server = await startServer({
    ...env,
    ...catalogue,
    CHATS_PER_USER_PER_MINUTE: '100000',
    REQUESTS_IN_FLIGHT_PER_IP: '32',
    MESH_API_WAIT_MS: '110000',
    CONNECTION_TIMEOUT_MS: '120000',
    ...(SERVER_CPU_PROF
      ? {
          NODE_OPTIONS: `--import ${path.join(import.meta.dirname, 'cpu-profile.mjs')}`,
          BENCH_CPU_PROF_DIR: SERVER_CPU_PROF,
        }
      : {}),
  });
  pin(server.child.pid, `0-${CORES - 2}`);
  pin(process.pid, `0-${CORES - 2}`);
  if (PIN) console.log(`pinned: serving peers on core ${CORES - 1}, the server and this process on 0-${CORES - 2}`);
  if (REALISTIC) await downloadModel(server.url, await signUpCookie(server.url, 'cacher'), 'bench');
  const peers = [
    await servingPeer(server, dir, MODEL),
    ...(REALISTIC ? [await servingPeer(server, dir, 'bench')] : []),
  ];
  const client = new OpenAI({ apiKey: await apiKey(server), baseURL: `${server.url}/v1`, maxRetries: 0 });
  const asker = new HeadlessPeer({ server: server.url, room: 'global', name: 'Asker', cacheDir: path.join(dir, 'a') });
  await asker.start();

  await routeOverhead(server, client, asker, MODEL, TOKENS);
  if (REALISTIC) await routeOverhead(server, client, asker, 'bench', TOKENS);
  // The API's own cost before any model runs (key lookup, budgets, routing): time to the stub's first token.
  const stub: number[] = [];
  for (let run = 0; run < runsFor('stub'); run++) stub.push((await overV1(client, 'stub')).ttftMs);
  console.log(`/v1 on the stub: TTFT ${median(stub).toFixed(1)} ms (key lookup, budgets, routing; no mesh)`);

  const before = await procStats(server.child.pid ?? 0);
  let peakRss = before.rssMiB;
  const sampler = setInterval(() => {
    void procStats(server.child.pid ?? 0).then((stats) => (peakRss = Math.max(peakRss, stats.rssMiB)));
  }, 100);
  const t0 = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: STREAMS }, () => overV1(client, MODEL, CONCURRENT_TOKENS)),
  );
  const wall = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const after = await procStats(server.child.pid ?? 0);
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const refused = results
    .filter((r) => r.status === 'rejected')
    .map((r) => String((r as PromiseRejectedResult).reason));
  const tokens = ok.reduce((sum, r) => sum + r.tokens, 0);
  console.log(
    `${STREAMS} concurrent /v1 streams of ${CONCURRENT_TOKENS} tokens: ${ok.length} answered (${ok.filter((r) => r.text === ok[0]?.text).length} identical), ${refused.length} refused ${refused.slice(0, 1).join('')}`,
  );
  console.log(`  ${wall.toFixed(1)} s wall, ${(tokens / wall).toFixed(1)} tok/s received in all`);
  console.log(
    `  server CPU ${(after.cpuS - before.cpuS).toFixed(2)} s (${((100 * (after.cpuS - before.cpuS)) / wall).toFixed(0)}% of a core), RSS ${before.rssMiB.toFixed(0)} -> ${after.rssMiB.toFixed(0)} MiB (peak ${peakRss.toFixed(0)})`,
  );

  await asker.stop();
  for (const peer of peers) peer.kill('SIGINT');
  if (REALISTIC) await hub.stop();
  server.child.kill('SIGTERM');
  await server.exited;

  for (const serve of IDLE ? ['', MODEL] : []) {
    const idle = await startServer({
      ...env,
      DATA_DIR: path.join(dir, `idle-${serve || 'none'}`),
      SERVE_MODELS: serve,
    });
    if (serve) {
      const key = await apiKey(idle);
      const c = new OpenAI({ apiKey: key, baseURL: `${idle.url}/v1`, maxRetries: 0 });
      for (let i = 0; i < 60; i++) {
        const listed = [];
        for await (const m of c.models.list()) listed.push(m.id);
        if (listed.includes(MODEL)) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await overV1(c);
    }
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    console.log(
      `idle server RSS, SERVE_MODELS=${serve || '(none)'}: ${(await procStats(idle.child.pid ?? 0)).rssMiB.toFixed(0)} MiB`,
    );
    idle.child.kill('SIGTERM');
    await idle.exited;
  }
  await rm(dir, { recursive: true, force: true });
}

await main();
process.exit(0);
