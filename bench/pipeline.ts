// Pipeline benchmarks (issue 18): one model cut into stages, each stage an ONNX Runtime session (onnxruntime-node,
// one thread each, as one device per stage would run it), connected in one process by in-memory wires with the
// data channel's frame codec and backpressure (src/shared/pipeline/in-process.ts).
//   npx tsx bench/pipeline.ts            (BENCH_TOKENS=64, BENCH_LATENCY_MS=5 by default)
// 1. Decode tokens/s with 1 (the whole model), 2 and 3 stages, and the time each extra stage adds per token.
// 2. Bytes per token per hop while decoding (frame header + job id + one row of hidden states).
// 3. Prefill of a 512-token prompt: time to the first token with the prompt in one frame and in chunks.
// 4. 1 to 3 again over wires that delay each frame by BENCH_LATENCY_MS one way (a LAN's half round trip).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { evenBoundaries } from '../scripts/pipeline/split-graph.ts';
import { writeStages } from '../scripts/pipeline/stage-files.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { buildStageGraphs } from '../scripts/tiny-model/stages.ts';
import { rng } from '../scripts/tiny-model/weights.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import { inProcessPipeline } from '../src/shared/pipeline/in-process.ts';

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

  async function measure(count: number, latencyMs: number) {
    const sessions = await Promise.all((files.get(count) ?? []).map((f) => openOrtStage(f, { threads: 1 })));
    const pipeline = inProcessPipeline(sessions, { maxPositions: BENCH.maxPositions, latencyMs });
    const job = { temperature: 0, topP: 1, seed: 0 };
    let jobs = 0;
    const run = async (prompt: number[], maxNewTokens: number, chunk?: number) => {
      const started = performance.now();
      const times: number[] = [];
      const before = pipeline.hops.map((h) => h.bytes);
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
      const decodeBytes = pipeline.hops.map(
        (h, i) => (h.bytes - (afterFirst[i] ?? before[i] ?? 0)) / (times.length - 1),
      );
      return {
        ttftMs: first - started,
        tokensPerSecond: ((times.length - 1) * 1000) / (last - first),
        decodeBytes,
      };
    };
    await run(ids(16), 8); // warm-up: first runs allocate
    const decode = [];
    for (let i = 0; i < RUNS; i++) decode.push(await run(ids(32), TOKENS));
    const prefill: Record<string, number> = {};
    for (const chunk of [undefined, ...CHUNKS]) {
      const times = [];
      for (let i = 0; i < RUNS; i++) times.push((await run(ids(PREFILL), 1, chunk)).ttftMs);
      prefill[chunk ? `chunks of ${chunk}` : 'one frame'] = median(times);
    }
    await pipeline.close();
    await Promise.all(sessions.map((s) => s.release()));
    return {
      tokensPerSecond: median(decode.map((d) => d.tokensPerSecond)),
      msPerToken: 1000 / median(decode.map((d) => d.tokensPerSecond)),
      bytesPerTokenPerHop: decode[0]?.decodeBytes.map(Math.round) ?? [],
      prefill,
    };
  }

  for (const latency of [0, LATENCY_MS]) {
    console.log(`\n## Wires delaying each frame ${latency} ms one way`);
    const figures = new Map<number, Awaited<ReturnType<typeof measure>>>();
    for (const count of [1, 2, 3]) figures.set(count, await measure(count, latency));
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
