// Pipeline benchmarks (issue 18): one model cut into stages, each stage an ONNX Runtime session (onnxruntime-node,
// one thread each, as one device per stage would run it), connected in one process by in-memory wires with the
// data channel's frame codec and backpressure (src/shared/pipeline/in-process.ts).
//   npx tsx bench/pipeline.ts            (BENCH_TOKENS=64, BENCH_LATENCY_MS=5 by default)
// 1. Decode tokens/s with 1 (the whole model), 2 and 3 stages, and the time each extra stage adds per token.
// 2. Bytes per token per hop while decoding (frame header + job id + one row of hidden states).
// 3. Prefill of a 512-token prompt: time to the first token with the prompt in one frame and in chunks.
// 4. 1 to 3 again over wires that delay each frame by BENCH_LATENCY_MS one way (a LAN's half round trip), and over
//    real WebRTC data channels on loopback (werift, PeerLink, the frame channel beside the peer protocol's), every
//    peer connection in this one process.
// 5. In a room: a real server process, each stage peer a headless peer in its own process (`npm run peer -- --stage
//    FROM-TO --stage-dir DIR`, what tests/pipeline-room.test.ts starts), the requester a HeadlessPeer in this
//    process asking through src/shared/pipeline/room-pipeline.ts: decode tokens/s with 1, 2 and 3 stage peers, each
//    hop's RTT on its data channel (the peer protocol's ping), the latency each extra stage adds per token against
//    one RTT plus 2 ms, bytes per token on the requester's hops, and the 512-token prefill with and without chunks.
// BENCH_PARTS=memory (1 to 4) or room (5); both by default.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { evenBoundaries } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { buildStageGraphs } from '../scripts/tiny-model/stages.ts';
import { rng } from '../scripts/tiny-model/weights.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import { RTCPeerConnection } from 'werift';
import { openFrameChannel } from '../src/shared/pipeline/channel-wire.ts';
import { type FrameWire, memoryWirePair } from '../src/shared/pipeline/frame-wire.ts';
import { type CountedWire, connectPipeline } from '../src/shared/pipeline/in-process.ts';
import { type LinkSignal, type PeerConnectionLike, PeerLink } from '../src/shared/rtc/peer-link.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 5);
const RUNS = 3;
/** The engine benchmark's model (bench/README.md): 8 layers, width 512, about 25M parameters. */
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const PREFILL = 512;
const CHUNKS = [64, 128];
const PARTS = new Set((process.env.BENCH_PARTS ?? 'memory,room').split(','));

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const next = rng(7);
const ids = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(next() * 256));

const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-pipeline-'));
try {
  const { weights } = await generateRandomModel(dir, BENCH);
  const files = new Map<number, string[]>([[1, [path.join(dir, 'onnx', 'model.onnx')]]]);
  for (const count of [2, 3]) {
    const out = path.join(dir, `stages-${count}`);
    const manifest = await writeStages(out, buildStageGraphs(weights, evenBoundaries(BENCH.layers, count)));
    files.set(
      count,
      manifest.stages.map((s) => path.join(out, s.file)),
    );
  }

  const links: PeerLink[] = [];
  const createPeerConnection = (config: { iceServers: { urls: string | string[] }[] }) =>
    new RTCPeerConnection({ iceServers: config.iceServers }) as unknown as PeerConnectionLike;
  async function webrtcHop(): Promise<[CountedWire, CountedWire]> {
    const ends: { a?: PeerLink; b?: PeerLink } = {};
    const relay = (to: 'a' | 'b') => (signal: LinkSignal) => void ends[to]?.signal(signal).catch(() => undefined);
    await new Promise<void>((resolve) => {
      const onChange = () => {
        if (ends.a?.state().channel === 'open' && ends.b?.state().channel === 'open') resolve();
      };
      ends.a = new PeerLink('b', false, createPeerConnection, [], relay('b'), onChange);
      ends.b = new PeerLink('a', true, createPeerConnection, [], relay('a'), onChange);
    });
    links.push(ends.a!, ends.b!);
    return Promise.all([openFrameChannel(ends.a!.pc), openFrameChannel(ends.b!.pc)]);
  }

  async function setup(count: number, wires: 'webrtc' | number) {
    const sessions = await Promise.all((files.get(count) ?? []).map((f) => openOrtStage(f, { threads: 1 })));
    const hops = await Promise.all(
      Array.from({ length: count + 1 }, () =>
        wires === 'webrtc' ? webrtcHop() : Promise.resolve(memoryWirePair({ latencyMs: wires })),
      ),
    );
    const pipeline = connectPipeline(sessions, hops, { maxPositions: BENCH.maxPositions });
    const job = { temperature: 0, topP: 1, seed: 0 };
    let jobs = 0;
    const run = async (prompt: number[], maxNewTokens: number, chunk?: number) => {
      const started = performance.now();
      const times: number[] = [];
      let afterFirst: number[] = [];
      for await (const _ of pipeline.generate(job, {
        jobId: `bench-${jobs++}`,
        prompt,
        maxNewTokens,
        eos: new Set(),
        chunk,
      })) {
        times.push(performance.now());
        if (times.length === 1) afterFirst = pipeline.hops.map((h) => h.bytes);
      }
      const first = times[0] ?? started;
      const last = times.at(-1) ?? first;
      return {
        ttftMs: first - started,
        tokensPerSecond: ((times.length - 1) * 1000) / (last - first),
        decodeBytes: pipeline.hops.map((h, i) => (h.bytes - (afterFirst[i] ?? 0)) / Math.max(1, times.length - 1)),
      };
    };
    await run(ids(16), 8); // warm-up: first runs allocate
    return {
      run,
      close: async () => {
        await pipeline.close();
        await Promise.all(sessions.map((s) => s.release()));
      },
    };
  }

  /** The three pipelines measured in turn, run by run, so that the machine's changing load falls on each alike. */
  async function measure(wires: 'webrtc' | number) {
    const counts = [1, 2, 3];
    const pipelines: Awaited<ReturnType<typeof setup>>[] = [];
    for (const count of counts) pipelines.push(await setup(count, wires));
    const decode = counts.map(() => [] as Awaited<ReturnType<Awaited<ReturnType<typeof setup>>['run']>>[]);
    for (let r = 0; r < RUNS; r++)
      for (const [i, p] of pipelines.entries()) decode[i]?.push(await p.run(ids(32), TOKENS));
    const prefill = counts.map(() => ({}) as Record<string, number>);
    for (const chunk of [undefined, ...CHUNKS]) {
      const times = counts.map(() => [] as number[]);
      for (let r = 0; r < RUNS; r++)
        for (const [i, p] of pipelines.entries()) times[i]?.push((await p.run(ids(PREFILL), 1, chunk)).ttftMs);
      times.forEach((t, i) => (prefill[i]![chunk ? `chunks of ${chunk}` : 'one frame'] = median(t)));
    }
    for (const p of pipelines) await p.close();
    for (const link of links.splice(0)) link.close();
    return new Map(
      counts.map((count, i) => {
        const rates = (decode[i] ?? []).map((d) => d.tokensPerSecond);
        return [
          count,
          {
            tokensPerSecond: median(rates),
            msPerToken: 1000 / median(rates),
            bytesPerTokenPerHop: decode[i]?.[0]?.decodeBytes.map(Math.round) ?? [],
            prefill: prefill[i] ?? {},
          },
        ] as const;
      }),
    );
  }

  for (const wires of PARTS.has('memory') ? ([0, LATENCY_MS, 'webrtc'] as const) : []) {
    console.log(
      wires === 'webrtc'
        ? '\n## WebRTC data channels on loopback (werift)'
        : `\n## In-memory wires delaying each frame ${wires} ms one way`,
    );
    const figures = await measure(wires);
    const whole = figures.get(1);
    console.log(
      '| stages | decode tok/s | ms/token | added ms/token per extra stage | bytes/token per hop (req→s0, s0→s1, …, last→req) |',
    );
    console.log('|---|---|---|---|---|');
    for (const [count, f] of figures) {
      const added = count === 1 || !whole ? '' : ((f.msPerToken - whole.msPerToken) / (count - 1)).toFixed(2);
      console.log(
        `| ${count} | ${f.tokensPerSecond.toFixed(1)} | ${f.msPerToken.toFixed(2)} | ${added} | ${f.bytesPerTokenPerHop.join(', ')} |`,
      );
    }
    console.log(`\nPrefill of a ${PREFILL}-token prompt, time to the first token (median of ${RUNS}, ms):`);
    console.log(`| stages | ${Object.keys(whole?.prefill ?? {}).join(' | ')} |`);
    console.log(
      `|---|${Object.keys(whole?.prefill ?? {})
        .map(() => '---')
        .join('|')}|`,
    );
    for (const [count, f] of figures)
      console.log(
        `| ${count} | ${Object.values(f.prefill)
          .map((ms) => ms.toFixed(0))
          .join(' | ')} |`,
      );
  }
  if (PARTS.has('room')) await inRoom();
} finally {
  await rm(dir, { recursive: true, force: true });
}

/** Part 5: the stages as headless peers in their own processes, in a room of a real server. */
async function inRoom() {
  const { ROOT, startServer } = await import('../tests/support/server-process.ts');
  const { HeadlessPeer } = await import('../src/peer/headless-peer.ts');
  const MODEL = 'bench-pipeline';
  const layouts: Record<number, [number, number][]> = {
    1: [[0, 8]],
    2: [
      [0, 4],
      [4, 8],
    ],
    3: [
      [0, 3],
      [3, 6],
      [6, 8],
    ],
  };
  const server = await startServer(
    {
      DATA_DIR: path.join(dir, 'server'),
      CLIENT_DIST_DIR: path.join(dir, 'none'),
      GUEST_CREATIONS_PER_IP_PER_HOUR: '1000',
    },
    240_000,
  );
  const children: ChildProcess[] = [];
  let requester: InstanceType<typeof HeadlessPeer> | null = null;
  try {
    /** `npm run peer -- --stage FROM-TO` (the CLI it runs, started as tests/pipeline-room.test.ts starts it). */
    const stagePeer = (name: string, [from, to]: [number, number]) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(ROOT, 'src/peer/cli.ts'),
          ...['--server', server.url, '--room', 'global', '--model', MODEL, '--name', name, '--threads', '1'],
          ...['--stage', `${from}-${to}`, '--stage-dir', dir, '--cache-dir', path.join(dir, `peer-${name}`)],
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      let out = '';
      child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
      return new Promise<void>((resolve, reject) => {
        const poll = setInterval(() => {
          if (!/ hosts layers /.test(out)) return;
          clearInterval(poll);
          resolve();
        }, 200);
        child.on('exit', (code) => {
          clearInterval(poll);
          reject(new Error(`stage peer ${name} exited (${code}): ${out.slice(-2000)}`));
        });
      });
    };
    const started = performance.now();
    await Promise.all(
      Object.entries(layouts).flatMap(([count, ranges]) => ranges.map((r, i) => stagePeer(`S${count}x${i}`, r))),
    );
    console.log(
      `\n## In a room: ${children.length} stage peers in their own processes (started in ${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
    requester = new HeadlessPeer({
      server: server.url,
      room: 'global',
      name: 'Asker',
      cacheDir: path.join(dir, 'peer-asker'),
      threads: 1,
    });
    await requester.start();
    const node = requester.node!;
    while (node.list().filter((p) => p.capabilities?.pipeline && node.stages.wire(p.peerId)).length < children.length)
      await new Promise((resolve) => setTimeout(resolve, 200));
    const idOf = (name: string) => node.list().find((p) => p.name === name)?.peerId ?? '';
    const placements = (count: number) =>
      (layouts[count] ?? []).map((layers, i) => ({ peerId: idOf(`S${count}x${i}`), layers }));
    /** Bytes the requester sent into the first stage and got back from the last, over their frame channels. */
    const received = new Map<string, number>();
    const counted = new Set<string>();
    const wireOf = (peerId: string) =>
      node.stages.wire(peerId) as (FrameWire & { stats?: { bytes: number } }) | undefined;
    const hopBytes = (count: number) => {
      const [first, last] = [placements(count)[0]!.peerId, placements(count).at(-1)!.peerId];
      if (!counted.has(last)) {
        counted.add(last);
        wireOf(last)?.onFrame((frame) => received.set(last, (received.get(last) ?? 0) + frame.byteLength));
      }
      return { sent: wireOf(first)?.stats?.bytes ?? 0, back: received.get(last) ?? 0 };
    };
    const ask = async (count: number, prompt: number[], maxNewTokens: number, chunk?: number) => {
      const before = hopBytes(count);
      let afterFirst = before;
      const times: number[] = [];
      const asked = performance.now();
      for await (const _ of node.pipelines.generate({
        model: MODEL,
        job: { temperature: 0, topP: 1, seed: 0 },
        prompt,
        maxNewTokens,
        eos: new Set(),
        stages: placements(count),
        ...(chunk ? { chunk } : {}),
      })) {
        times.push(performance.now());
        if (times.length === 1) afterFirst = hopBytes(count);
      }
      const end = hopBytes(count);
      const first = times[0] ?? asked;
      const steps = Math.max(1, times.length - 1);
      return {
        ttftMs: first - asked,
        tokensPerSecond: ((times.length - 1) * 1000) / ((times.at(-1) ?? first) - first),
        bytesIn: (end.sent - afterFirst.sent) / steps,
        bytesOut: (end.back - afterFirst.back) / steps,
      };
    };
    for (const count of [1, 2, 3]) await ask(count, ids(16), 8); // warm-up: each stage's first runs allocate
    const decode = new Map<number, Awaited<ReturnType<typeof ask>>[]>([1, 2, 3].map((c) => [c, []]));
    const rtts = new Map<string, number[]>();
    for (let r = 0; r < RUNS; r++)
      for (const count of [1, 2, 3]) {
        decode.get(count)?.push(await ask(count, ids(32), TOKENS));
        // The peer protocol's RTT to each stage peer (ping every 2 s on the same connection as the frame channel).
        for (const p of node.list()) if (p.rttMs !== null) rtts.set(p.name, [...(rtts.get(p.name) ?? []), p.rttMs]);
      }
    const prefill = new Map<number, Record<string, number>>([1, 2, 3].map((c) => [c, {}]));
    for (const chunk of [undefined, ...CHUNKS])
      for (const count of [1, 2, 3]) {
        const times: number[] = [];
        for (let r = 0; r < RUNS; r++) times.push((await ask(count, ids(PREFILL), 1, chunk)).ttftMs);
        prefill.get(count)![chunk ? `chunks of ${chunk}` : 'one frame'] = median(times);
      }
    const rttOf = (name: string) => median(rtts.get(name) ?? []);
    const allRtt = median([...rtts.values()].map((v) => median(v)));
    const base = 1000 / median(decode.get(1)!.map((d) => d.tokensPerSecond));
    console.log(
      `Greedy, 32-token prompt, ${TOKENS} new tokens, median of ${RUNS} after a warm-up; RTT: the requester's smoothed ping RTT to each stage peer (median over the runs; the stage peers' hops to each other are the same loopback links between processes)`,
    );
    console.log(
      '| stage peers | decode tok/s | ms/token | added ms/token per extra stage | goal: RTT + 2 ms | RTT to each stage peer (ms) | bytes/token: requester→first, last→requester |',
    );
    console.log('|---|---|---|---|---|---|---|');
    for (const count of [1, 2, 3]) {
      const runs = decode.get(count)!;
      const tps = median(runs.map((d) => d.tokensPerSecond));
      const ms = 1000 / tps;
      const added = count > 1 ? ((ms - base) / (count - 1)).toFixed(1) : '';
      const names = (layouts[count] ?? []).map((_, i) => `S${count}x${i}`);
      console.log(
        `| ${count} | ${tps.toFixed(1)} | ${ms.toFixed(1)} | ${added} | ${count > 1 ? (allRtt + 2).toFixed(1) : ''} | ${names.map((n) => rttOf(n).toFixed(1)).join(', ')} | ${Math.round(median(runs.map((d) => d.bytesIn)))}, ${Math.round(median(runs.map((d) => d.bytesOut)))} |`,
      );
    }
    console.log(`\nPrefill of a ${PREFILL}-token prompt in the room, time to the first token (median of ${RUNS}, ms):`);
    console.log(`| stage peers | ${Object.keys(prefill.get(1) ?? {}).join(' | ')} |`);
    console.log(
      `|---|${Object.keys(prefill.get(1) ?? {})
        .map(() => '---')
        .join('|')}|`,
    );
    for (const count of [1, 2, 3])
      console.log(
        `| ${count} | ${Object.values(prefill.get(count) ?? {})
          .map((v) => v.toFixed(0))
          .join(' | ')} |`,
      );
  } finally {
    await requester?.stop().catch(() => undefined);
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map((c) => (c.exitCode !== null ? undefined : new Promise((resolve) => c.once('exit', resolve)))),
    );
    server.child.kill('SIGTERM');
    await server.exited;
  }
}
process.exit(0);
