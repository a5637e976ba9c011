// The room pipeline's stall watchdog (src/shared/pipeline/room-pipeline.ts) against stages that stop working in
// the ways a room's peers do, without a server: MeshNodes in this process, each pair joined by an in-memory peer
// channel (delivering on a later task, as a data channel does) and an in-memory frame channel
// (`memoryWirePair`), stage peers running stages of a generated 4-layer model on onnxruntime-node, spares that
// load any stage (FileStageSource over the model's directory). What a stage does wrong is done at the world's
// edge: its graph's runs slowed or hung, its link dropping frames, or the peer frozen (nothing it sends or is sent
// arrives; a frozen receiver's buffer full, as a data channel's is once its receiver stops reading). Every answer
// is checked against the same stages run without a fault (in one process, `inProcessPipeline`).
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { evenBoundaries } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { buildStageGraphs } from '../scripts/tiny-model/stages.ts';
import { rng } from '../scripts/tiny-model/weights.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import { FileStageSource } from '../src/peer/stage-source.ts';
import { graphVersion } from '../src/peer/splitter/graph-digest.ts';
import { EngineGate } from '../src/shared/mesh/engine-gate.ts';
import { MeshNode } from '../src/shared/mesh/mesh-node.ts';
import type { PeerChannel } from '../src/shared/mesh/peer-channel.ts';
import { FRAME_HIGH_WATER_BYTES, type FrameWire, memoryWirePair } from '../src/shared/pipeline/frame-wire.ts';
import { inProcessPipeline } from '../src/shared/pipeline/in-process.ts';
import type { LayerRange } from '../src/shared/pipeline/pipe-protocol.ts';
import type { PipelineReadout } from '../src/shared/pipeline/room-pipeline.ts';
import type { StageSource } from '../src/shared/pipeline/stage-server.ts';
import { StageRunner } from '../src/shared/pipeline/stage-runner.ts';
import type { StageSession } from '../src/shared/pipeline/stage-session.ts';

const MODEL = 'pipeline-watch';
const OPTIONS = { layers: 4, hidden: 64, heads: 4, seed: 31, vocab: 300, maxPositions: 160 };
const RANGES: LayerRange[] = [
  [0, 2],
  [2, 3],
  [3, 4],
];
const JOB = { temperature: 0, topP: 1, seed: 0 };
const TOKENS = 10;
const next = rng(11);
const PROMPT = Array.from({ length: 40 }, () => 3 + Math.floor(next() * 250));

let dir: string;
let files: string[];
let expected: number[];
/** The model version of the generated model's whole graph. */
let version: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-pipeline-watchdog-'));
  const { weights } = await generateRandomModel(dir, OPTIONS);
  version = await graphVersion(path.join(dir, 'onnx', 'model.onnx'));
  const manifest = await writeStages(
    path.join(dir, 'stages-3'),
    buildStageGraphs(weights, evenBoundaries(OPTIONS.layers, 3)),
  );
  files = manifest.stages.map((s) => path.join(dir, 'stages-3', s.file));
  expect(manifest.stages.map((s) => s.layers)).toEqual(RANGES);
  const sessions = await Promise.all(files.map((f) => openOrtStage(f, { threads: 1 })));
  const pipeline = inProcessPipeline(sessions);
  expected = [];
  for await (const token of pipeline.generate(JOB, {
    jobId: 'reference',
    prompt: PROMPT,
    maxNewTokens: TOKENS,
    eos: new Set(),
    chunk: 5,
  }))
    expected.push(token);
  await pipeline.close();
  await Promise.all(sessions.map((s) => s.release()));
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * What a stage's graph does: run as it should, slowly (`delayMs` a run, or `nextMs` for its next run only: one long
 * frame), or not at all (`hang`).
 */
interface Fault {
  delayMs: number;
  nextMs: number;
  hang: boolean;
}

/** A stage peer's source holding one range of the 3-stage cut, its runs going through `fault`. */
function heldSource(index: number, fault: Fault, opened: StageSession[]): StageSource {
  const layers = RANGES[index]!;
  return {
    model: MODEL,
    layers: OPTIONS.layers,
    describe: () => ({
      model: MODEL,
      layers: OPTIONS.layers,
      holds: [layers],
      loadable: [],
      anyRange: false,
      layerMb: 1,
      freeMemoryMb: 1000,
      // The model version the spares' FileStageSource gives this model (docs/pipeline.md#stage-fingerprints): a
      // replacement must be of the same version.
      version,
      fingerprints: [],
    }),
    async open(asked) {
      if (asked[0] !== layers[0] || asked[1] !== layers[1]) throw new Error('no stage of these layers here');
      const session = await openOrtStage(files[index]!, { threads: 1 });
      opened.push(session);
      return new StageRunner(
        {
          inputs: session.inputs,
          outputs: session.outputs,
          async run(feeds) {
            const delayMs = fault.delayMs + fault.nextMs;
            fault.nextMs = 0;
            if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
            // Hung: the run never ends (released when the test ends).
            while (fault.hang) await new Promise((resolve) => setTimeout(resolve, 50));
            return session.run(feeds);
          },
          release: () => session.release(),
        },
        { maxPositions: OPTIONS.maxPositions },
      );
    },
  };
}

interface Member {
  name: string;
  peerId: string;
  node: MeshNode;
}

/** A room in this process; `frozen` peers neither send nor receive, and `full` ones show a full buffer to senders. */
function room() {
  const members: Member[] = [];
  const frozen = new Set<string>();
  const full = new Set<string>();
  /** Frames from one peer to another that are lost: `${from}>${to}` and what the frame is. */
  const dropping = new Set<string>();
  const links = new Map<string, { open: boolean; frames: FrameWire[] }>();
  const sessions: StageSession[] = [];
  const faults: Fault[] = [];
  const cut = (a: string, b: string) => frozen.has(a) || frozen.has(b);

  function frameEnd(end: FrameWire, from: string, to: string): FrameWire {
    const held: (() => void)[] = [];
    return {
      maxFrameBytes: end.maxFrameBytes,
      send(frame) {
        if (cut(from, to) || dropping.has(`${from}>${to}`)) return;
        end.send(frame);
      },
      isOpen: () => end.isOpen(),
      // A receiver that stopped reading: its data channel's buffer stays above the sender's high-water mark.
      bufferedAmount: () => (full.has(to) ? 2 * FRAME_HIGH_WATER_BYTES : end.bufferedAmount()),
      onceBelow(threshold, listener) {
        if (full.has(to)) held.push(listener);
        else end.onceBelow(threshold, listener);
      },
      onFrame: (listener) => end.onFrame((frame) => !cut(from, to) && listener(frame)),
      close: () => end.close(),
    };
  }

  function connect(a: Member, b: Member) {
    const state = { open: true, frames: [] as FrameWire[] };
    links.set([a.peerId, b.peerId].sort().join(), state);
    const channels: { a?: PeerChannel; b?: PeerChannel } = {};
    const wire = (from: string, to: string, deliver: () => PeerChannel | undefined) => ({
      send: (text: string) => setImmediate(() => state.open && !cut(from, to) && deliver()?.receive(text)),
      isOpen: () => state.open,
      bufferedAmount: () => 0,
      onceBelow: (_threshold: number, listener: () => void) => listener(),
    });
    channels.a = a.node.addPeer(
      b.peerId,
      b.name,
      wire(a.peerId, b.peerId, () => channels.b),
    );
    channels.b = b.node.addPeer(
      a.peerId,
      a.name,
      wire(b.peerId, a.peerId, () => channels.a),
    );
    const [ab, ba] = memoryWirePair({ maxFrameBytes: 64 * 1024 });
    state.frames.push(ab, ba);
    a.node.addFrameWire(b.peerId, frameEnd(ab, a.peerId, b.peerId));
    b.node.addFrameWire(a.peerId, frameEnd(ba, b.peerId, a.peerId));
  }

  function join(name: string, source: StageSource | null): Member {
    const node = new MeshNode(
      {
        loaded: () => null,
        generate: () => {
          throw new Error('no engine here');
        },
      },
      new EngineGate(),
      { adapter: 'cpu', stages: source },
    );
    const member = { name, peerId: randomUUID(), node };
    for (const other of members) connect(member, other);
    members.push(member);
    return member;
  }

  return {
    members,
    frozen,
    full,
    dropping,
    faults,
    stage(index: number, name: string) {
      const fault = { delayMs: 0, nextMs: 0, hang: false };
      faults[index] = fault;
      return join(name, heldSource(index, fault, sessions));
    },
    async spare(name: string) {
      return join(
        name,
        await FileStageSource.create({ model: MODEL, dir, cacheDir: path.join(dir, `cache-${name}`), threads: 1 }),
      );
    },
    requester: (name: string) => join(name, null),
    /** `member` leaves: every link to it closes, and every other peer hears it. */
    leave(member: Member) {
      for (const other of members) {
        if (other === member) continue;
        const state = links.get([member.peerId, other.peerId].sort().join());
        if (state) {
          state.open = false;
          for (const end of state.frames) end.close();
        }
        other.node.removePeer(member.peerId);
        member.node.removePeer(other.peerId);
      }
    },
    async close() {
      for (const fault of faults) if (fault) fault.hang = false;
      frozen.clear();
      full.clear();
      for (const member of members) member.node.close();
      await Promise.all(sessions.splice(0).map((s) => s.release().catch(() => undefined)));
    },
  };
}

let current: ReturnType<typeof room> | null = null;

afterEach(async () => {
  await current?.close();
  current = null;
});

/** Three stage peers, `spares` spares and a requester, every hello in; the watchdog's timing shortened. */
async function setUp(spares: number, timing: { stallMs: number; probeMs: number; replyMs: number; frameMs?: number }) {
  const r = room();
  current = r;
  const stages = RANGES.map((_, i) => r.stage(i, `Stage${i}`));
  for (let i = 0; i < spares; i++) await r.spare(`Spare${i}`);
  const asker = r.requester('Asker');
  Object.assign(asker.node.pipelines.timing, timing);
  await vi.waitFor(() => expect(asker.node.list().filter((p) => p.capabilities?.pipeline)).toHaveLength(3 + spares), {
    timeout: 20_000,
    interval: 50,
  });
  return { r, stages, asker };
}

async function ask(
  asker: Member,
  stages: Member[],
  onToken: (count: number) => void = () => {},
  /** Prompt rows a frame; 0: the whole prompt in one frame. */
  chunk = 5,
): Promise<{ tokens: number[]; readout: PipelineReadout | null }> {
  const tokens: number[] = [];
  let readout: PipelineReadout | null = null;
  for await (const token of asker.node.pipelines.generate({
    model: MODEL,
    job: JOB,
    stages: stages.map((s, i) => ({ peerId: s.peerId, layers: RANGES[i]! })),
    prompt: PROMPT,
    maxNewTokens: TOKENS,
    eos: new Set(),
    ...(chunk ? { chunk } : {}),
    onReadout: (r) => (readout = r),
  })) {
    tokens.push(token);
    onToken(tokens.length);
  }
  return { tokens, readout };
}

const names = (readout: PipelineReadout | null) => readout?.stages.map((s) => s.name);

describe("the room pipeline's stall watchdog", () => {
  it('does not take a prefill and decode slower than stallMs for a stall (no failover with a spare there)', async () => {
    const { r, stages, asker } = await setUp(1, { stallMs: 1200, probeMs: 1000, replyMs: 10_000 });
    // 8 prompt chunks through 3 stages at 250 ms a run: seconds before the first token, positions moving all along.
    for (const fault of r.faults) fault.delayMs = 250;
    const started = performance.now();
    const { tokens, readout } = await ask(asker, stages);
    expect(tokens).toEqual(expected);
    expect(readout?.ttftMs).toBeGreaterThan(1200);
    expect(performance.now() - started).toBeGreaterThan(2 * 1200);
    expect(readout?.failovers).toEqual([]);
    expect(names(readout)).toEqual(['Stage0', 'Stage1', 'Stage2']);
  }, 120_000);

  it('does not take one unchunked frame that runs longer than stallMs for a stall: the stage says it runs it', async () => {
    const { r, stages, asker } = await setUp(1, { stallMs: 800, probeMs: 600, replyMs: 10_000 });
    // The whole prompt in one frame, which the middle stage runs for 3 s: no position moves meanwhile, but its answer
    // to each probe says it is running a frame of the job (`runningMs`).
    r.faults[1]!.nextMs = 3000;
    const { tokens, readout } = await ask(asker, stages, () => {}, 0);
    expect(tokens).toEqual(expected);
    expect(readout?.ttftMs).toBeGreaterThan(3000);
    expect(readout?.failovers).toEqual([]);
    expect(names(readout)).toEqual(['Stage0', 'Stage1', 'Stage2']);
  }, 120_000);

  it('replaces a first stage that answers the probe but runs nothing, and completes identically', async () => {
    // Its run hangs: it says it is running a frame, which keeps the job moving for `frameMs`, no longer.
    const { r, stages, asker } = await setUp(1, { stallMs: 800, probeMs: 600, replyMs: 10_000, frameMs: 1500 });
    const { tokens, readout } = await ask(asker, stages, (count) => {
      if (count === 4) r.faults[0]!.hang = true;
    });
    expect(tokens).toEqual(expected);
    expect(readout?.failovers).toEqual([{ layers: [0, 2], from: stages[0]!.peerId, to: expect.any(String) }]);
    expect(names(readout)).toEqual(['Spare0', 'Stage1', 'Stage2']);
  }, 120_000);

  it('replaces a last stage that runs the step but whose token never comes back, and completes identically', async () => {
    const { r, stages, asker } = await setUp(1, { stallMs: 800, probeMs: 600, replyMs: 10_000 });
    const { tokens, readout } = await ask(asker, stages, (count) => {
      if (count === 4) r.dropping.add(`${stages[2]!.peerId}>${asker.peerId}`);
    });
    expect(tokens).toEqual(expected);
    expect(readout?.failovers).toEqual([{ layers: [3, 4], from: stages[2]!.peerId, to: expect.any(String) }]);
    expect(names(readout)).toEqual(['Stage0', 'Stage1', 'Spare0']);
  }, 120_000);

  it('routes around a stage whose frames stop reaching the next one: the next is replaced, fed over a new link', async () => {
    const { r, stages, asker } = await setUp(1, { stallMs: 800, probeMs: 600, replyMs: 10_000 });
    const { tokens, readout } = await ask(asker, stages, (count) => {
      // Stage 1 runs each step and answers probes; what it sends to stage 2 is lost on the way.
      if (count === 4) r.dropping.add(`${stages[1]!.peerId}>${stages[2]!.peerId}`);
    });
    expect(tokens).toEqual(expected);
    // The positions cannot tell a sender whose frames are lost from a receiver that runs nothing: the receiver is
    // replaced, and the sender's replay reaches the replacement over another link.
    expect(readout?.failovers).toEqual([{ layers: [3, 4], from: stages[2]!.peerId, to: expect.any(String) }]);
    expect(names(readout)).toEqual(['Stage0', 'Stage1', 'Spare0']);
  }, 120_000);

  it('replaces a neighbour that stalls while a stage is being replaced, and completes identically', async () => {
    const { r, stages, asker } = await setUp(2, { stallMs: 800, probeMs: 600, replyMs: 4000 });
    const { tokens, readout } = await ask(asker, stages, (count) => {
      if (count !== 4) return;
      // The last stage's peer freezes as the middle one leaves: the failover's question to it goes unanswered.
      r.frozen.add(stages[2]!.peerId);
      r.leave(stages[1]!);
    });
    expect(tokens).toEqual(expected);
    expect(readout?.failovers.map((f) => [f.layers, f.from])).toEqual([
      [[2, 3], stages[1]!.peerId],
      [[3, 4], stages[2]!.peerId],
    ]);
    expect(names(readout)?.slice(0, 1)).toEqual(['Stage0']);
    expect(names(readout)?.slice(1).sort()).toEqual(['Spare0', 'Spare1']);
  }, 120_000);

  it.each([0, 1])(
    'replaces stage %i frozen with its buffer full (the sender before it held by backpressure) in one failover',
    async (frozen) => {
      const { r, stages, asker } = await setUp(1, { stallMs: 800, probeMs: 600, replyMs: 4000 });
      const { tokens, readout } = await ask(asker, stages, (count) => {
        if (count !== 4) return;
        r.frozen.add(stages[frozen]!.peerId);
        r.full.add(stages[frozen]!.peerId);
      });
      expect(tokens).toEqual(expected);
      // Only the frozen stage: the requester (or stage 0) waiting on its full buffer answers the failover at once.
      expect(readout?.failovers).toEqual([
        { layers: RANGES[frozen], from: stages[frozen]!.peerId, to: expect.any(String) },
      ]);
      expect(names(readout)?.[frozen]).toBe('Spare0');
    },
    120_000,
  );
});
