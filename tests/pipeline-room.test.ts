// A pipeline across headless peers in a room: a real server process (signaling over Socket.IO), HeadlessPeers each
// hosting a stage of a generated 4-layer model (`stage` / `stageDir`, as `npm run peer -- --stage` gives them,
// onnxruntime-node), werift data channels between them (the peer protocol's JSON channel for the job's control
// messages, the frame channel beside it for hidden states), and a requester peer that finds the chain in the room.
// 2- and 3-stage answers equal the inference engine's on the whole model (greedy and seeded); a stage's peer that
// leaves mid-answer is replaced by another peer (which cuts the layers from the whole model) and the answer
// completes identically; `auto` peers get their layers from the plan.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../scripts/fake-hub.ts';
import { evenBoundaries } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { buildStageGraphs } from '../scripts/tiny-model/stages.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { graphVersion } from '../src/peer/splitter/graph-digest.ts';
import type { JobRecorder } from '../src/shared/mesh/mesh-answer.ts';
import { askPipeline } from '../src/shared/pipeline/pipeline-answer.ts';
import type { EngineMessage, Sampling } from '../src/shared/engine-protocol.ts';
import type { LayerRange } from '../src/shared/pipeline/pipe-protocol.ts';
import type { PipelineReadout } from '../src/shared/pipeline/room-pipeline.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { publishModels } from './support/model-fixtures.ts';
import { ROOT, type ServerProcess, startServer } from './support/server-process.ts';
import { promptIds } from '../src/shared/chat-template.ts';

const MODEL = 'pipeline-tiny';
const OPTIONS = { layers: 4, hidden: 64, heads: 4, seed: 23, vocab: 400, maxPositions: 160 };
const PROMPT = 'Tell me a long story about the sea and the ships upon it.';
const SAMPLINGS: { name: string; sampling: Sampling }[] = [
  { name: 'greedy', sampling: { temperature: 0, topP: 1, maxNewTokens: 20 } },
  { name: 'seeded', sampling: { temperature: 0.9, topP: 0.95, maxNewTokens: 20, seed: 4242 } },
];

let dir: string;
let modelDir: string;
/** The fake Hub's commit of the model. */
let commit: string;
let hub: FakeHub;
let server: ServerProcess;
let tokenizer: PreTrainedTokenizer;
let eos: number;
let prompt: number[];
const expected = new Map<string, number[]>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-pipeline-room-'));
  // Started first, while the model is generated and the engine answers: a loaded machine starts it slowly.
  hub = new FakeHub();
  await hub.start();
  const { manifestPath, published } = await publishModels(hub, dir, [{ id: MODEL, options: OPTIONS }]);
  // Started while the engine answers (a loaded machine starts it slowly), with the model in its catalogue: peers
  // with no stage directory fetch it through the server's proxy.
  const starting = startServer(
    {
      DATA_DIR: path.join(dir, 'server'),
      CLIENT_DIST_DIR: path.join(dir, 'none'),
      GUEST_CREATIONS_PER_IP_PER_HOUR: '1000',
      HF_ENDPOINT: hub.origin,
      MANIFEST_PATH: manifestPath,
      DOWNLOAD_DISK_MARGIN_BYTES: '0',
    },
    240_000,
  );
  starting.catch(() => undefined);
  const entry = published[MODEL];
  if (!entry?.weights) throw new Error('the generated model is missing');
  modelDir = entry.dir;
  commit = entry.model.revision;
  // Stage files as the generator emits them: a 2-stage and a 3-stage cut, each with its manifest naming the graph
  // they are cut from (docs/pipeline.md#stage-fingerprints).
  const source = await graphVersion(path.join(modelDir, 'onnx', 'model.onnx'));
  for (const count of [2, 3])
    await writeStages(
      path.join(modelDir, `stages-${count}`),
      buildStageGraphs(entry.weights, evenBoundaries(OPTIONS.layers, count)),
      { source },
    );
  const engine = new InferenceEngine({ modelHost: `${hub.origin}/`, cacheDir: path.join(dir, 'cache') });
  await engine.load(entry.model, 'auto', () => {});
  tokenizer = await AutoTokenizer.from_pretrained(entry.model.repo, { revision: entry.model.revision });
  eos = tokenizer.convert_tokens_to_ids('<|im_end|>') as number;
  const messages: EngineMessage[] = [{ role: 'user', content: PROMPT }];
  prompt = promptIds(tokenizer, messages);
  for (const { name, sampling } of SAMPLINGS) {
    const result = await engine.generate(messages, sampling, () => {});
    await engine.reset();
    expected.set(name, result.tokenIds);
  }
  await engine.unload();
  server = await starting;
}, 300_000);

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
  await hub?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const started: HeadlessPeer[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop().catch(() => undefined)));
});

// Guests join the global room only: each test's peers leave it (afterEach) before the next one's come.
const ROOM = 'global';

async function peer(
  room: string,
  name: string,
  stage?: LayerRange | 'auto',
  stageMemoryMb?: number,
  /**
   * `proxy`: no stage directory, the model comes through the server (`token`: as an account, which may ask for it);
   * `stageDir`: another model directory than the generated model's; `corruptTokens`: a dishonest last stage.
   */
  from: { proxy?: boolean; token?: string; stageDir?: string; corruptTokens?: boolean } = {},
) {
  const made = new HeadlessPeer({
    server: server.url,
    room,
    name,
    cacheDir: path.join(dir, `peer-${name}`),
    threads: 1,
    ...(stage ? { model: MODEL, stage, ...(from.proxy ? {} : { stageDir: from.stageDir ?? modelDir }) } : {}),
    ...(stageMemoryMb ? { stageMemoryMb } : {}),
    ...(from.token ? { token: from.token } : {}),
    ...(from.corruptTokens ? { corruptTokens: true } : {}),
  });
  started.push(made);
  await made.start();
  return made;
}

/**
 * Until the requester sees a chain of `count` stages among `peers` stage peers (every hello and frame channel in),
 * and every peer of this process has its frame channels to the others open (the stages' own hops).
 */
/**
 * A stage peer in its own process, as `npm run peer -- --stage 2-3` starts it (tsx's CLI would run the peer in a child
 * process; this spawns the peer's own process, so a test can kill or stop it); `output()` is what it printed so far.
 */
function stageProcess(name: string) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(ROOT, 'src/peer/cli.ts'),
      ...['--server', server.url, '--room', ROOM, '--model', MODEL, '--name', name, '--threads', '1'],
      ...['--stage', '2-3', '--stage-dir', modelDir, '--cache-dir', path.join(dir, `peer-${name.toLowerCase()}`)],
    ],
    { cwd: ROOT },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return { child, exited, output: () => out };
}

async function chainOf(requester: HeadlessPeer, count: number, peers: number) {
  await expect
    .poll(
      () => {
        const node = requester.node;
        const ready = node?.list().filter((p) => p.capabilities?.pipeline && node.stages.wire(p.peerId)).length;
        // Every member but itself: the `peers` stage peers and the requester.
        const linked = started.every((s) => {
          const list = s.node?.list() ?? [];
          return list.length === peers && list.every((p) => s.node?.stages.wire(p.peerId));
        });
        return ready === peers && linked ? node?.pipelines.chain(MODEL)?.length : -1;
      },
      { timeout: 90_000, interval: 200 },
    )
    .toBe(count);
}

async function ask(
  requester: HeadlessPeer,
  sampling: Sampling,
  /** Called after each token, before the next is asked for (the generator sends the next step when resumed). */
  onToken: (count: number) => void | Promise<unknown> = () => {},
): Promise<{ tokens: number[]; readout: PipelineReadout | null }> {
  const tokens: number[] = [];
  let readout: PipelineReadout | null = null;
  for await (const token of requester.node!.pipelines.generate({
    model: MODEL,
    job: { temperature: sampling.temperature ?? 0, topP: sampling.topP ?? 1, seed: sampling.seed ?? 0 },
    prompt,
    maxNewTokens: sampling.maxNewTokens ?? 20,
    eos: new Set([eos]),
    chunk: 5,
    onReadout: (r) => (readout = r),
  })) {
    tokens.push(token);
    await onToken(tokens.length);
  }
  return { tokens, readout };
}

describe('a pipeline across headless peers in a room', () => {
  it('the engine answers are real answers: long enough, and the seeded one differs from the greedy one', () => {
    expect(expected.get('greedy')?.length).toBeGreaterThan(4);
    expect(expected.get('seeded')).not.toEqual(expected.get('greedy'));
  });

  it.each([
    {
      count: 2,
      ranges: [
        [0, 2],
        [2, 4],
      ] as LayerRange[],
    },
    {
      count: 3,
      ranges: [
        [0, 2],
        [2, 3],
        [3, 4],
      ] as LayerRange[],
    },
  ])(
    'gives the engine tokens with $count stages, each on its own peer, greedy and seeded',
    async ({ count, ranges }) => {
      const room = ROOM;
      await Promise.all(ranges.map((r, i) => peer(room, `Stage${count}x${i}`, r)));
      const requester = await peer(room, `Asker${count}`);
      await chainOf(requester, count, count);
      for (const { name, sampling } of SAMPLINGS) {
        const { tokens, readout } = await ask(requester, sampling);
        expect(tokens, name).toEqual(expected.get(name));
        // The readout names each stage's peer, in layer order.
        expect(readout?.stages.map((s) => [s.name, s.layers])).toEqual(ranges.map((r, i) => [`Stage${count}x${i}`, r]));
        expect(readout?.failovers).toEqual([]);
        expect(readout?.tokensOut).toBe(tokens.length);
      }
    },
    180_000,
  );

  it('hosts stages of a catalogue model fetched through the server, with no stage directory (--stage without --stage-dir)', async () => {
    const room = ROOM;
    // Only an account may have the server fetch a model from the Hub; the guest after it finds it there.
    const signup = await fetch(`${server.url}/api/trpc/auth.signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'stage-owner', password: 'correct horse battery', displayName: 'ProxyA' }),
    });
    expect(signup.status).toBe(200);
    const token = /mesh_session=([^;]+)/.exec(signup.headers.get('set-cookie') ?? '')?.[1];
    expect(token).toBeTruthy();
    const owner = await peer(room, 'ProxyA', [0, 2], undefined, { proxy: true, token: token! });
    await peer(room, 'ProxyB', [2, 4], undefined, { proxy: true });
    const requester = await peer(room, 'ProxyAsker');
    await chainOf(requester, 2, 2);
    const { tokens, readout } = await ask(requester, SAMPLINGS[0]!.sampling);
    expect(tokens).toEqual(expected.get('greedy'));
    expect(readout?.stages.map((s) => [s.name, s.layers])).toEqual([
      ['ProxyA', [0, 2]],
      ['ProxyB', [2, 4]],
    ]);
    // Each peer's copy of the whole model is the server's at the Hub's commit, and its cut stages are named by it.
    for (const name of ['ProxyA', 'ProxyB']) {
      const cache = path.join(dir, `peer-${name}`);
      const copy = await readFile(path.join(cache, 'models', 'mesh', MODEL, commit, 'onnx', 'model.onnx'));
      expect(copy.equals(await readFile(path.join(modelDir, 'onnx', 'model.onnx')))).toBe(true);
      expect(await readdir(path.join(cache, 'stages', MODEL))).toEqual([commit]);
    }
    expect(owner.node?.capabilities().pipeline?.holds).toEqual([[0, 2]]);
  }, 180_000);

  it.each([0, 1, 2])(
    'completes the answer identically when stage %i of 3 leaves mid-answer and a spare peer takes its layers',
    async (lost) => {
      const room = ROOM;
      const ranges: LayerRange[] = [
        [0, 2],
        [2, 3],
        [3, 4],
      ];
      const stages = await Promise.all(ranges.map((r, i) => peer(room, `Lose${lost}x${i}`, r)));
      // The spare holds no stage: it cuts whichever layers it is asked for from the whole model.
      await peer(room, `Spare${lost}`, 'auto');
      const requester = await peer(room, `LoseAsker${lost}`);
      await chainOf(requester, 3, 4);
      // One answer per chain (the spare takes the lost stage): greedy, and seeded for the middle stage.
      const { name, sampling } = SAMPLINGS[lost === 1 ? 1 : 0]!;
      {
        let leaving: Promise<void> | null = null;
        const { tokens, readout } = await ask(requester, sampling, (count) => {
          if (count === 4) leaving = stages[lost]!.stop();
        });
        await leaving;
        expect(tokens, name).toEqual(expected.get(name));
        expect(readout?.failovers).toHaveLength(1);
        expect(readout?.failovers[0]?.layers).toEqual(ranges[lost]);
        expect(readout?.stages[lost]?.name).toBe(`Spare${lost}`);
      }
    },
    180_000,
  );

  it('completes the answer identically when the process of a stage peer (npm run peer -- --stage) is killed mid-answer', async () => {
    const room = ROOM;
    const { child, exited, output } = stageProcess('Doomed');
    try {
      await expect
        .poll(output, { timeout: 120_000, interval: 250 })
        .toMatch(/Doomed hosts layers 2-3 of pipeline-tiny \(4 layers\) in room global/);
      await Promise.all([peer(room, 'KillA', [0, 2]), peer(room, 'KillC', [3, 4]), peer(room, 'KillSpare', 'auto')]);
      const requester = await peer(room, 'KillAsker');
      await chainOf(requester, 3, 4);
      const doomed = requester.node?.list().find((p) => p.name === 'Doomed')?.peerId;
      expect(requester.node?.pipelines.chain(MODEL)?.[1]?.peerId).toBe(doomed);
      // Killed after the fourth token, and the fifth step sent once the process is gone: its frames are lost on the
      // way (the room hears of the departure later, from the server), and the replacement recomputes them.
      const { tokens, readout } = await ask(requester, SAMPLINGS[1]!.sampling, (count) => {
        if (count !== 4) return;
        child.kill('SIGKILL');
        return exited;
      });
      expect(tokens).toEqual(expected.get('seeded'));
      expect(readout?.failovers).toEqual([{ layers: [2, 3], from: doomed, to: expect.any(String) }]);
      expect(readout?.stages.map((s) => s.name)).toEqual(['KillA', 'KillSpare', 'KillC']);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }, 240_000);

  it('replaces a stage peer that stalls mid-answer (its process stopped, still in the room) and completes identically', async () => {
    const room = ROOM;
    const { child, exited, output } = stageProcess('Frozen');
    try {
      await expect
        .poll(output, { timeout: 120_000, interval: 250 })
        .toMatch(/Frozen hosts layers 2-3 of pipeline-tiny/);
      await Promise.all([peer(room, 'IceA', [0, 2]), peer(room, 'IceC', [3, 4]), peer(room, 'IceSpare', 'auto')]);
      const requester = await peer(room, 'IceAsker');
      await chainOf(requester, 3, 4);
      const frozen = requester.node?.list().find((p) => p.name === 'Frozen')?.peerId;
      requester.node!.pipelines.timing.stallMs = 3000;
      const { tokens, readout } = await ask(requester, SAMPLINGS[0]!.sampling, (count) => {
        if (count === 4) child.kill('SIGSTOP');
      });
      expect(tokens).toEqual(expected.get('greedy'));
      expect(readout?.failovers).toEqual([{ layers: [2, 3], from: frozen, to: expect.any(String) }]);
      expect(readout?.stages.map((s) => s.name)).toEqual(['IceA', 'IceSpare', 'IceC']);
      // It never left: the stall was noticed, not a departure.
      expect(requester.node?.list().some((p) => p.peerId === frozen)).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }, 240_000);

  it('records a pipeline answer as a mesh job and spot-checks it: another chain agrees, and a dishonest stage is caught', async () => {
    const room = ROOM;
    const [first, second] = await Promise.all([
      peer(room, 'RecA', [0, 2]),
      peer(room, 'RecB', [2, 4]),
      // Checkers: peers of other users that cut any range, each with room for the whole model (a one-stage chain).
      peer(room, 'CheckX', 'auto', 2),
      peer(room, 'CheckY', 'auto', 2),
    ]);
    const requester = await peer(room, 'RecAsker');
    await chainOf(requester, 2, 4);
    const node = requester.node!;
    const idOf = (p: HeadlessPeer) => node.list().find((m) => m.name === p.status().name)?.peerId ?? '';
    // Every call of the job's record as the server answered it (the requester's own session, the real procedures).
    const answered: [string, unknown, unknown][] = [];
    const real = requester.jobRecords();
    const records: JobRecorder = {
      start: (input) => real.start(input).then((r) => (answered.push(['start', input, r]), r)),
      attempt: (input) => real.attempt(input).then((r) => (answered.push(['attempt', input, r]), r)),
      finish: (input) => real.finish(input).then((r) => (answered.push(['finish', input, r]), r)),
      check: (input) => real.check(input).then((r) => (answered.push(['check', input, r]), r)),
    };
    const version = first.node!.capabilities().pipeline!.version;
    const askOn = (stages: HeadlessPeer[]) =>
      askPipeline(
        { room, node },
        records,
        {
          model: { id: MODEL, sha256: version },
          job: { temperature: 0, topP: 1, seed: 0 },
          prompt,
          maxNewTokens: 20,
          eos: new Set([eos]),
          chunk: 5,
          stages: stages.map((s, i) => ({ peerId: idOf(s), layers: i === 0 ? [0, 2] : [2, 4] })),
        },
        () => {},
      );

    // Every answer of users new here is checked; the room's rate would check 1 in 10 of the others.
    const honest = await askOn([first, second]);
    expect(honest.tokenIds).toEqual(expected.get('greedy'));
    const matched = await honest.check;
    expect(matched).toMatchObject({ result: 'MATCH', excluded: [] });
    expect(matched?.checkers).toHaveLength(1);
    const checker = node.list().find((m) => m.peerId === matched?.checkers[0])?.name;
    expect(['CheckX', 'CheckY']).toContain(checker);
    await expect.poll(() => answered.filter(([call]) => call === 'check').length).toBe(1);
    const [started, ...rest] = answered.splice(0);
    expect(started).toEqual([
      'start',
      {
        room,
        serverPeerId: idOf(second),
        model: { id: MODEL, sha256: version },
        stages: [
          { peerId: idOf(first), layers: [0, 2] },
          { peerId: idOf(second), layers: [2, 4] },
        ],
      },
      { id: expect.any(String) },
    ]);
    const id = (started?.[2] as { id: string }).id;
    expect(rest).toEqual([
      [
        'finish',
        expect.objectContaining({
          id,
          outcome: 'COMPLETED',
          serverPeerId: idOf(second),
          tokensOut: expected.get('greedy')!.length,
        }),
        { id },
      ],
      [
        'attempt',
        { id, peerId: matched?.checkers[0], role: 'CHECKER' },
        { id, peerId: matched?.checkers[0], role: 'CHECKER' },
      ],
      ['check', { id, result: 'MATCH', excludedPeerIds: [] }, { id, mismatches: 0 }],
    ]);

    // The last stage lies about the tokens it samples: two chains of other users agree against it and the answer is
    // corrected. Tokens alone do not say which stage lied: the job is run again on the served chain with one stage
    // at a time swapped for another peer's copy (docs/pipeline.md#records-and-spot-checks). Swapping the first
    // stage still gives the liar's tokens; swapping the last gives the checkers': only the liar's user is excluded
    // here and recorded against on the server. (It joins now: as a checker of the first answer it would have been
    // caught.)
    const liar = await peer(room, 'RecLiar', [2, 4], undefined, { corruptTokens: true });
    await expect
      .poll(
        () => {
          // The requester sees its stages and has its frame channel; it has frame channels to the five others.
          const seen = node.peer(idOf(liar))?.capabilities?.pipeline && node.stages.wire(idOf(liar));
          return seen ? liar.node?.list().filter((p) => liar.node?.stages.wire(p.peerId)).length : -1;
        },
        { timeout: 90_000, interval: 200 },
      )
      .toBe(5);
    const lied = await askOn([first, liar]);
    expect(lied.tokenIds).not.toEqual(expected.get('greedy'));
    const caught = await lied.check;
    expect(caught).toMatchObject({
      result: 'MISMATCH',
      excluded: [idOf(liar)],
      corrected: { tokenIds: expected.get('greedy') },
      blame: { scope: 'stage', runs: 2, why: expect.stringMatching(/layers 2–4/) },
    });
    expect(caught?.checkers).toHaveLength(2);
    await expect
      .poll(() => answered.find(([call]) => call === 'check')?.[1])
      .toMatchObject({
        result: 'MISMATCH',
        excludedPeerIds: [idOf(liar)],
      });
    expect(answered.find(([call]) => call === 'check')?.[2]).toMatchObject({ mismatches: 1 });
    // The stand-ins that re-ran a stage are recorded as the job's checkers, beside the two checking chains.
    const checkersRecorded = answered.filter(
      ([call, input]) => call === 'attempt' && (input as { role: string }).role === 'CHECKER',
    );
    expect(checkersRecorded.length).toBeGreaterThanOrEqual(3);
    expect(node.requester.isExcluded({ userId: node.peer(idOf(liar))!.userId })).toBe(true);
    expect(node.requester.isExcluded({ userId: node.peer(idOf(first))!.userId })).toBe(false);
    // The room's chain leaves the excluded peer out from now on; the honest first stage may still serve.
    expect(node.pipelines.chain(MODEL)?.map((s) => s.peerId)).not.toContain(idOf(liar));
  }, 240_000);

  it('has a pipeline answer checked by a peer holding the whole model with the weights its stages are cut from', async () => {
    const room = ROOM;
    // Stages of the catalogue's model, cut by peers from the server's copy: their version is the catalogue's
    // fingerprint of those weights, the one a peer sharing the whole model gives.
    const signup = await fetch(`${server.url}/api/trpc/auth.signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'check-owner', password: 'correct horse battery', displayName: 'CutA' }),
    });
    const token = /mesh_session=([^;]+)/.exec(signup.headers.get('set-cookie') ?? '')?.[1];
    expect(token).toBeTruthy();
    const first = await peer(room, 'CutA', [0, 2], undefined, { proxy: true, token: token! });
    const second = await peer(room, 'CutB', [2, 4], undefined, { proxy: true });
    const whole = new HeadlessPeer({
      server: server.url,
      room,
      name: 'Whole',
      cacheDir: path.join(dir, 'peer-Whole'),
      threads: 1,
      model: MODEL,
    });
    started.push(whole);
    await whole.start();
    const requester = await peer(room, 'WholeAsker');
    const node = requester.node!;
    await expect
      .poll(
        () => {
          const linked = started.every((s) => s.node?.list().length === 3);
          const shared = node.list().some((p) => p.capabilities?.models.length);
          return linked && shared ? node.pipelines.chain(MODEL)?.length : -1;
        },
        { timeout: 90_000, interval: 200 },
      )
      .toBe(2);
    const version = first.node!.capabilities().pipeline!.version;
    expect(second.node!.capabilities().pipeline!.version).toBe(version);
    expect(whole.node!.capabilities().models[0]?.sha256).toBe(version);
    const outcome = await askPipeline(
      { room, node },
      requester.jobRecords(),
      {
        model: { id: MODEL, sha256: version },
        job: { temperature: 0, topP: 1, seed: 0 },
        prompt,
        maxNewTokens: 20,
        eos: new Set([eos]),
        chunk: 5,
        messages: [{ role: 'user', content: PROMPT }],
      },
      () => {},
    );
    expect(outcome.tokenIds).toEqual(expected.get('greedy'));
    const check = await outcome.check;
    const wholeId = node.list().find((p) => p.name === 'Whole')?.peerId;
    expect(check).toMatchObject({ result: 'MATCH', checkers: [wholeId] });
  }, 240_000);

  it('does not chain a stage of another version of the model: its fingerprint says so', async () => {
    const room = ROOM;
    // Another model of the same id and shape (other weights), its stage files cut from it, naming it as their source.
    // Each peer holds stage files only (no whole graph: none of them could cut all four layers alone).
    const otherDir = path.join(dir, 'other-version');
    const { weights } = await generateRandomModel(otherDir, { ...OPTIONS, seed: 24 });
    await writeStages(path.join(otherDir, 'stages-2'), buildStageGraphs(weights, [2]), {
      source: await graphVersion(path.join(otherDir, 'onnx', 'model.onnx')),
    });
    const stagesOnly = { stageDir: path.join(modelDir, 'stages-2') };
    const first = await peer(room, 'VerA', [0, 2], undefined, stagesOnly);
    const other = await peer(room, 'VerOther', [2, 4], undefined, { stageDir: path.join(otherDir, 'stages-2') });
    const requester = await peer(room, 'VerAsker');
    await expect
      .poll(
        () =>
          requester.node?.list().filter((p) => p.capabilities?.pipeline && requester.node?.stages.wire(p.peerId))
            .length,
        { timeout: 90_000, interval: 200 },
      )
      .toBe(2);
    const versionOf = (p: HeadlessPeer) => p.node!.capabilities().pipeline!.version;
    expect(versionOf(first)).not.toBe(versionOf(other));
    expect(requester.node!.pipelines.chain(MODEL)).toBeNull();
    // A stage of the same version joins: the chain is made of it, and the answer is the whole model's.
    await peer(room, 'VerB', [2, 4], undefined, stagesOnly);
    await chainOf(requester, 2, 3);
    const names = requester.node!.pipelines.chain(MODEL)!.map((s) => requester.node!.peer(s.peerId)?.name);
    expect(names).toEqual(['VerA', 'VerB']);
    expect(versionOf(first)).toBe(await graphVersion(path.join(modelDir, 'onnx', 'model.onnx')));
    const { tokens } = await ask(requester, SAMPLINGS[0]!.sampling);
    expect(tokens).toEqual(expected.get('greedy'));
  }, 180_000);

  it('plans the stages over peers started with --stage auto from their memory', async () => {
    const room = ROOM;
    // A layer of this model takes about 0.36 MiB (its stage files' size): 1 MiB holds 2 of the 4 layers, 2 MiB all.
    const autos = await Promise.all([peer(room, 'AutoA', 'auto', 1), peer(room, 'AutoB', 'auto', 1)]);
    const requester = await peer(room, 'AutoAsker');
    await chainOf(requester, 2, 2);
    const { tokens, readout } = await ask(requester, SAMPLINGS[1]!.sampling);
    expect(tokens).toEqual(expected.get('seeded'));
    expect(readout?.stages.map((s) => s.layers)).toEqual([
      [0, 2],
      [2, 4],
    ]);
    expect(readout?.stages.map((s) => s.name).sort()).toEqual(['AutoA', 'AutoB']);
    // With room for the whole model, one auto peer holds all of it (no hop at all). The first two leave: they
    // hold their stages now, and a chain of held stages goes before a plan.
    await Promise.all(autos.map((a) => a.stop()));
    await peer(room, 'AutoSmall', 'auto', 1);
    const roomy = await peer(room, 'AutoRoomy', 'auto', 2);
    await expect.poll(() => requester.node?.pipelines.chain(MODEL)?.length, { timeout: 60_000 }).toBe(1);
    const alone = await ask(requester, SAMPLINGS[0]!.sampling);
    expect(alone.tokens).toEqual(expected.get('greedy'));
    expect(alone.readout?.stages).toEqual([{ peerId: expect.any(String), name: 'AutoRoomy', layers: [0, 4] }]);
    expect(roomy.node?.capabilities().pipeline?.holds).toEqual([[0, 4]]);
  }, 180_000);
});
