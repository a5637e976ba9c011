// Pipeline benchmark in a room (issue 18): the model of bench/pipeline.ts hosted by headless peers in a room of a
// real server (HeadlessPeers in this process, one ONNX Runtime thread each, werift data channels on loopback, the
// job's control messages on the peer protocol), asked by a requester peer (src/shared/pipeline/room-pipeline.ts).
//   npx tsx bench/pipeline-room.ts      (BENCH_TOKENS=64 by default)
// 1. Decode tokens/s and time to the first token with 1 stage peer (the whole model), 2 and 3 stage peers.
// 2. Failover: a middle stage's peer leaves after the 16th token; the gap until the next token (the replacement
//    cuts its layers from the whole graph, loads them and rebuilds its cache), with the answer checked unchanged.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { evenBoundaries } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { buildStageGraphs } from '../scripts/tiny-model/stages.ts';
import { rng } from '../scripts/tiny-model/weights.ts';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import type { LayerRange } from '../src/shared/pipeline/pipe-protocol.ts';
import type { PipelineReadout, StagePlacement } from '../src/shared/pipeline/room-pipeline.ts';
import { startServer } from '../tests/support/server-process.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
const RUNS = 3;
const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
const MODEL = 'bench-pipeline';
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const next = rng(7);
const prompt = Array.from({ length: 32 }, () => 3 + Math.floor(next() * 256));

const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-pipeline-room-'));
const server = await startServer(
  {
    DATA_DIR: path.join(dir, 'server'),
    CLIENT_DIST_DIR: path.join(dir, 'none'),
    GUEST_CREATIONS_PER_IP_PER_HOUR: '1000',
  },
  240_000,
);
const peers: HeadlessPeer[] = [];
try {
  const { weights } = await generateRandomModel(dir, BENCH);
  for (const count of [2, 3])
    await writeStages(
      path.join(dir, `stages-${count}`),
      buildStageGraphs(weights, evenBoundaries(BENCH.layers, count)),
    );
  const start = async (name: string, stage?: LayerRange | 'auto') => {
    const peer = new HeadlessPeer({
      server: server.url,
      room: 'global',
      name,
      cacheDir: path.join(dir, `peer-${name}`),
      threads: 1,
      ...(stage ? { model: MODEL, stage, stageDir: dir } : {}),
    });
    peers.push(peer);
    await peer.start();
    return peer;
  };
  const layouts: Record<number, LayerRange[]> = {
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
  const hosts = new Map<number, HeadlessPeer[]>();
  for (const [count, ranges] of Object.entries(layouts))
    hosts.set(Number(count), await Promise.all(ranges.map((r, i) => start(`S${count}x${i}`, r))));
  await start('Spare', 'auto');
  console.log(`${peers.length} stage peers started`);
  const requester = await start('Asker');
  const node = requester.node!;
  const members = peers.length - 1;
  for (let waited = 0; ; waited++) {
    const ready = node.list().filter((p) => p.capabilities?.pipeline && node.stages.wire(p.peerId)).length;
    // Every peer's frame channels to every other (the stages' own hops) too.
    const linked = peers.every(
      (p) => p.node?.list().length === members && p.node.list().every((o) => p.node?.stages.wire(o.peerId)),
    );
    if (ready >= members && linked) break;
    if (waited % 25 === 0) console.log(`${ready} of ${members} stage peers ready (${node.list().length} linked)`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const idOf = (peer: HeadlessPeer) => {
    const name = peer.status().name;
    return node.list().find((p) => p.name === name)?.peerId ?? '';
  };
  const placements = (count: number): StagePlacement[] =>
    (hosts.get(count) ?? []).map((p, i) => ({ peerId: idOf(p), layers: layouts[count]![i]! }));

  const ask = async (stages: StagePlacement[], onToken: (n: number, at: number) => void = () => {}) => {
    const tokens: number[] = [];
    let readout: PipelineReadout | null = null;
    for await (const token of node.pipelines.generate({
      model: MODEL,
      job: { temperature: 0, topP: 1, seed: 0 },
      prompt,
      maxNewTokens: TOKENS,
      eos: new Set(),
      stages,
      onReadout: (r) => (readout = r),
    })) {
      tokens.push(token);
      onToken(tokens.length, performance.now());
    }
    return { tokens, readout: readout as PipelineReadout | null };
  };

  console.log(`Decode, greedy, ${prompt.length}-token prompt, ${TOKENS} new tokens, median of ${RUNS} after a warm-up`);
  const results = new Map<number, { tps: number[]; ttft: number[] }>();
  for (const count of [1, 2, 3]) {
    await ask(placements(count));
    results.set(count, { tps: [], ttft: [] });
  }
  for (let run = 0; run < RUNS; run++)
    for (const count of [1, 2, 3]) {
      const { readout } = await ask(placements(count));
      results.get(count)?.tps.push(readout?.tokensPerSecond ?? 0);
      results.get(count)?.ttft.push(readout?.ttftMs ?? 0);
    }
  const base = 1000 / median(results.get(1)?.tps ?? []);
  console.log('| stage peers | decode tok/s | ms/token | ms/token added per extra stage | first token ms |');
  console.log('|---|---|---|---|---|');
  for (const count of [1, 2, 3]) {
    const r = results.get(count)!;
    const ms = 1000 / median(r.tps);
    const added = count > 1 ? ((ms - base) / (count - 1)).toFixed(1) : '';
    console.log(
      `| ${count} | ${median(r.tps).toFixed(1)} | ${ms.toFixed(1)} | ${added} | ${median(r.ttft).toFixed(0)} |`,
    );
  }

  const reference = await ask(placements(3));
  let lostAt = 0;
  let gap = 0;
  let previous = 0;
  const leaving: Promise<void>[] = [];
  const lost = await ask(placements(3), (n, at) => {
    if (lostAt && !gap) gap = at - lostAt;
    if (n === 16) {
      lostAt = performance.now();
      leaving.push(hosts.get(3)![1]!.stop());
    }
    previous = at;
  });
  await Promise.all(leaving);
  const same = JSON.stringify(lost.tokens) === JSON.stringify(reference.tokens);
  console.log(
    `Failover: stage 1 of 3 (layers 3-6) left after token 16; next token ${gap.toFixed(0)} ms later (replacement ${lost.readout?.stages[1]?.name}: cut, load, rebuild ${prompt.length + 16} positions); answer unchanged: ${same}; last token at ${(previous - lostAt).toFixed(0)} ms after the loss`,
  );
} finally {
  await Promise.all(peers.map((p) => p.stop().catch(() => undefined)));
  server.child.kill('SIGTERM');
  await server.exited;
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
