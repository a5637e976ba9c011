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
import { memoryWirePair } from '../src/shared/pipeline/frame-wire.ts';
import { type CountedWire, connectPipeline } from '../src/shared/pipeline/in-process.ts';
import { type LinkSignal, type PeerConnectionLike, PeerLink } from '../src/shared/rtc/peer-link.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 5);
const RUNS = 3;
/** The engine benchmark's model (bench/README.md): 8 layers, width 512, about 25M parameters. */
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const PREFILL = 512;
const CHUNKS = [64, 128];

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

  for (const wires of [0, LATENCY_MS, 'webrtc'] as const) {
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
} finally {
  await rm(dir, { recursive: true, force: true });
}
