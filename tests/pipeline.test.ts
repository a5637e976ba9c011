// A pipeline answer is the whole model's answer: the generated model's 2- and 3-stage graphs, run by stage hosts
// connected with in-memory wires (the frame codec and backpressure a data channel gets), give exactly the tokens
// the inference engine gives on the whole model (transformers.js on onnxruntime-node, loaded from a fake Hub),
// greedy and seeded, with the prompt in one frame or in chunks; a stage that fails ends the job with its reason.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { FakeHub } from '../scripts/fake-hub.ts';
import { evenBoundaries } from '../src/peer/splitter/split-graph.ts';
import { writeStages } from '../src/peer/splitter/stage-files.ts';
import { buildStageGraphs } from '../scripts/tiny-model/stages.ts';
import { openOrtStage } from '../src/peer/ort-stage-session.ts';
import type { EngineModel, Sampling } from '../src/shared/engine-protocol.ts';
import { encodeFrame, payloadOffset } from '../src/shared/pipeline/frame.ts';
import { memoryWirePair } from '../src/shared/pipeline/frame-wire.ts';
import {
  type ConnectedPipeline,
  type CountedWire,
  connectPipeline,
  inProcessPipeline,
} from '../src/shared/pipeline/in-process.ts';
import { openFrameChannel } from '../src/shared/pipeline/channel-wire.ts';
import { type LinkSignal, type PeerConnectionLike, PeerLink } from '../src/shared/rtc/peer-link.ts';
import { PipelineJobError } from '../src/shared/pipeline/pipeline-requester.ts';
import { StageHost } from '../src/shared/pipeline/stage-host.ts';
import { StageRunner } from '../src/shared/pipeline/stage-runner.ts';
import type { StageSession } from '../src/shared/pipeline/stage-session.ts';
import { InferenceEngine } from '../src/worker/engine.ts';
import { publishModels } from './support/model-fixtures.ts';
import { promptIds as chatPromptIds } from '../src/shared/chat-template.ts';

const OPTIONS = { layers: 4, hidden: 64, heads: 4, seed: 23, vocab: 400, maxPositions: 160 };
const PROMPTS = ['Hello there, how are you?', 'Tell me a long story about the sea and the ships upon it.'];
const SAMPLINGS: { name: string; sampling: Sampling }[] = [
  { name: 'greedy', sampling: { temperature: 0, topP: 1, maxNewTokens: 24 } },
  { name: 'seeded', sampling: { temperature: 0.9, topP: 0.95, maxNewTokens: 24, seed: 4242 } },
];

let dir: string;
let hub: FakeHub;
let engine: InferenceEngine;
let model: EngineModel;
let tokenizer: PreTrainedTokenizer;
let eos: number;
const stageFiles = new Map<number, string[]>();
const expected = new Map<string, number[]>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-pipeline-'));
  hub = new FakeHub();
  await hub.start();
  const { published } = await publishModels(hub, dir, [{ id: 'pipeline-tiny', options: OPTIONS }]);
  const entry = published['pipeline-tiny'];
  if (!entry?.weights) throw new Error('the generated model is missing');
  model = entry.model;
  for (const count of [1, 2, 3]) {
    const out = path.join(entry.dir, `stages-${count}`);
    const graphs = count === 1 ? null : buildStageGraphs(entry.weights, evenBoundaries(OPTIONS.layers, count));
    if (!graphs) {
      stageFiles.set(1, [path.join(entry.dir, 'onnx', 'model.onnx')]);
      continue;
    }
    const manifest = await writeStages(out, graphs, { externalData: count === 3 });
    stageFiles.set(
      count,
      manifest.stages.map((s) => path.join(out, s.file)),
    );
  }
  // The whole model, as a peer serving it runs it today.
  engine = new InferenceEngine({ modelHost: `${hub.origin}/`, cacheDir: path.join(dir, 'cache') });
  await engine.load(model, 'auto', () => {});
  tokenizer = await AutoTokenizer.from_pretrained(model.repo, { revision: model.revision });
  eos = tokenizer.convert_tokens_to_ids('<|im_end|>') as number;
  for (const prompt of PROMPTS)
    for (const { name, sampling } of SAMPLINGS) {
      const result = await engine.generate([{ role: 'user', content: prompt }], sampling, () => {});
      await engine.reset();
      expected.set(`${prompt}|${name}`, result.tokenIds);
    }
}, 180_000);

afterAll(async () => {
  await engine?.unload();
  await hub?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function promptIds(prompt: string): number[] {
  return chatPromptIds(tokenizer, [{ role: 'user', content: prompt }]);
}

async function openStages(count: number): Promise<StageSession[]> {
  return Promise.all((stageFiles.get(count) ?? []).map((file) => openOrtStage(file, { threads: 1 })));
}

async function expectEngineTokens(pipeline: ConnectedPipeline, chunk: number | undefined) {
  let n = 0;
  for (const prompt of PROMPTS)
    for (const { name, sampling } of SAMPLINGS) {
      const tokens: number[] = [];
      const ids = promptIds(prompt);
      for await (const token of pipeline.generate(
        { temperature: sampling.temperature, topP: sampling.topP, seed: sampling.seed ?? 0 },
        { jobId: `job-${n++}`, prompt: ids, maxNewTokens: sampling.maxNewTokens, eos: new Set([eos]), chunk },
      )) {
        // Every stage holds where the answer starts and what ends it: the last one keeps the first token from ending it.
        if (!tokens.length)
          for (const host of pipeline.hosts)
            expect(host.openJobs()[0]).toMatchObject({ answerStart: ids.length, endTokens: [eos] });
        tokens.push(token);
      }
      expect(tokens, `${prompt} (${name})`).toEqual(expected.get(`${prompt}|${name}`));
    }
}

const createPeerConnection = (config: { iceServers: { urls: string | string[] }[] }) =>
  new RTCPeerConnection({ iceServers: config.iceServers }) as unknown as PeerConnectionLike;

/** Two PeerLinks connected over loopback (signals relayed in order, as the server does), and their frame channels. */
async function linkedWires(links: PeerLink[]): Promise<[CountedWire, CountedWire]> {
  const ends: { a?: PeerLink; b?: PeerLink } = {};
  const relay = (to: 'a' | 'b') => (signal: LinkSignal) => void ends[to]?.signal(signal).catch(() => undefined);
  await new Promise<void>((resolve) => {
    let done = false;
    const onChange = () => {
      if (done || ends.a?.state().channel !== 'open' || ends.b?.state().channel !== 'open') return;
      done = true;
      resolve();
    };
    ends.a = new PeerLink('b', false, createPeerConnection, [], relay('b'), onChange);
    ends.b = new PeerLink('a', true, createPeerConnection, [], relay('a'), onChange);
  });
  links.push(ends.a!, ends.b!);
  return Promise.all([openFrameChannel(ends.a!.pc), openFrameChannel(ends.b!.pc)]);
}

describe('a pipeline of stage graphs', () => {
  it('the engine answers are real answers: long enough, and seeded ones differ from greedy ones', () => {
    for (const prompt of PROMPTS) {
      const greedy = expected.get(`${prompt}|greedy`) ?? [];
      expect(greedy.length).toBeGreaterThan(4);
      expect(expected.get(`${prompt}|seeded`)).not.toEqual(greedy);
    }
  });

  describe.each([1, 2, 3])('with %i stage(s)', (count) => {
    it.each([{ chunk: undefined }, { chunk: 5 }])(
      'gives the engine tokens on the whole model, greedy and seeded (prompt chunk: $chunk)',
      async ({ chunk }) => {
        const sessions = await openStages(count);
        const pipeline = inProcessPipeline(sessions, { maxPositions: OPTIONS.maxPositions });
        await expectEngineTokens(pipeline, chunk);
        // The prompt went in the frames asked for, and each hop carried one frame per decoded token after it.
        const first = pipeline.hops[0];
        const promptFrames = PROMPTS.map((p) => Math.ceil(promptIds(p).length / (chunk ?? promptIds(p).length)));
        const decoded = [...expected.values()].reduce((sum, t) => sum + t.length, 0);
        expect(first?.frames).toBe(
          promptFrames.reduce((a, b) => a + b, 0) * SAMPLINGS.length + decoded - PROMPTS.length * SAMPLINGS.length,
        );
        expect(pipeline.hops.at(-1)?.frames).toBe(decoded);
        await pipeline.close();
        await Promise.all(sessions.map((s) => s.release()));
      },
      120_000,
    );
  });

  it('splits hidden states into frames that fit a small largest message, with the same tokens', async () => {
    const sessions = await openStages(3);
    // 1 KiB frames hold 3 rows of 64 float32: every prompt crosses each stage hop in several frames.
    const pipeline = inProcessPipeline(sessions, { maxPositions: OPTIONS.maxPositions, maxFrameBytes: 1024 });
    await expectEngineTokens(pipeline, undefined);
    const rows = Math.floor((1024 - payloadOffset('job-0')) / (OPTIONS.hidden * 4));
    expect(rows).toBe(3);
    const promptFrames = PROMPTS.reduce((sum, p) => sum + Math.ceil(promptIds(p).length / rows), 0) * SAMPLINGS.length;
    const steps = [...expected.values()].reduce((sum, t) => sum + t.length - 1, 0);
    expect(pipeline.hops[1]?.frames).toBe(promptFrames + steps);
    expect(pipeline.hops[2]?.frames).toBe(promptFrames + steps);
    await pipeline.close();
    await Promise.all(sessions.map((s) => s.release()));
  }, 120_000);

  it.each([0, 1, 2])(
    'continues identically when stage %i of 3 is lost mid-answer and another takes over its layers',
    async (lost) => {
      const sessions = await openStages(3);
      const pipeline = inProcessPipeline(sessions, { maxPositions: OPTIONS.maxPositions });
      const spare: StageSession[] = [];
      let n = 0;
      for (const prompt of PROMPTS)
        for (const { name, sampling } of SAMPLINGS) {
          const tokens: number[] = [];
          let replaced: Promise<void> | null = null;
          for await (const token of pipeline.generate(
            { temperature: sampling.temperature, topP: sampling.topP, seed: sampling.seed ?? 0 },
            { jobId: `fail-${n++}`, prompt: promptIds(prompt), maxNewTokens: 24, eos: new Set([eos]), chunk: 5 },
          )) {
            tokens.push(token);
            // Lost while the next token's frames are on their way: the generator sends it as soon as this returns.
            if (tokens.length === 4)
              replaced = new Promise((resolve) => setTimeout(resolve, 0)).then(async () => {
                const session = await openOrtStage(stageFiles.get(3)![lost]!, { threads: 1 });
                spare.push(session);
                await pipeline.replaceStage(lost, session, [memoryWirePair(), memoryWirePair()]);
              });
          }
          await replaced;
          expect(tokens, `${prompt} (${name})`).toEqual(expected.get(`${prompt}|${name}`));
          // The replacement ran the prompt and the tokens before the loss (rebuilding its cache), then the rest.
          expect(pipeline.hosts[lost]?.stats.rows).toBe(promptIds(prompt).length + tokens.length - 1);
        }
      await pipeline.close();
      await Promise.all([...sessions, ...spare].map((s) => s.release()));
    },
    120_000,
  );

  describe.each([2, 3])('over WebRTC data channels (werift, PeerLink), %i stages', (count) => {
    it('gives the engine tokens, greedy and seeded, the prompt in chunks', async () => {
      const links: PeerLink[] = [];
      const hops = await Promise.all(Array.from({ length: count + 1 }, () => linkedWires(links)));
      const sessions = await openStages(count);
      const pipeline = connectPipeline(sessions, hops, { maxPositions: OPTIONS.maxPositions });
      await expectEngineTokens(pipeline, 5);
      // Every frame crossed every hop: one hidden-state frame per token frame, one sampled token per answer token.
      for (const hop of pipeline.hops.slice(1, -1)) expect(hop.frames).toBe(pipeline.hops[0]?.frames);
      expect(pipeline.hops.at(-1)?.frames).toBe([...expected.values()].reduce((sum, t) => sum + t.length, 0));
      await pipeline.close();
      for (const link of links) link.close();
      await Promise.all(sessions.map((s) => s.release()));
    }, 120_000);
  });

  it('ends a job with the failing stage and its reason (context overflow, a frame out of order, a job no stage opened, a bad frame) or when stopped', async () => {
    const sessions = await openStages(2);
    const pipeline = inProcessPipeline(sessions, { maxPositions: OPTIONS.maxPositions });
    const job = { temperature: 0, topP: 1, seed: 0 };
    const ids = promptIds(PROMPTS[0] ?? '');
    // Too long for the model's context: the stage refuses at the position past it.
    const tooLong = Array.from({ length: OPTIONS.maxPositions + 1 }, (_, i) => ids[i % ids.length] ?? 0);
    const run = async (prompt: number[], chunk?: number, signal?: AbortSignal) => {
      const tokens: number[] = [];
      for await (const token of pipeline.generate(job, {
        jobId: `x-${chunk}`,
        prompt,
        maxNewTokens: 8,
        eos: new Set(),
        chunk,
        signal,
      })) {
        tokens.push(token);
        if (tokens.length === 2) controller.abort();
      }
      return tokens;
    };
    const controller = new AbortController();
    // In one frame, and in chunks where the failure comes while later chunks are still being sent.
    for (const chunk of [undefined, 40]) {
      const overflow = await run(tooLong, chunk).catch((error: unknown) => error);
      expect(overflow).toBeInstanceOf(PipelineJobError);
      expect(overflow).toMatchObject({ code: 'CONTEXT_OVERFLOW', message: expect.stringMatching(/^stage 0: .*160/) });
    }
    // Stopped by its requester after two tokens.
    const stopped = await run(ids, undefined, controller.signal).catch((error: unknown) => error);
    expect(stopped).toMatchObject({ code: 'ABORTED' });

    // A frame for a job the stage was never given is refused, and names that job.
    const [sender, receiver] = memoryWirePair();
    const [downstream] = memoryWirePair();
    const host = new StageHost(new StageRunner(sessions[1]!), { upstream: receiver, downstream });
    const failures: string[] = [];
    host.onFailure((f) => failures.push(`${f.code} ${f.jobId}`));
    const hidden = new Float32Array(OPTIONS.hidden);
    sender.send(
      encodeFrame({ kind: 'hidden', jobId: 'stray', position: 0, sample: true, width: OPTIONS.hidden, data: hidden }),
    );
    // Opened, but out of order: position 3 before 0.
    host.open({ jobId: 'late', temperature: 0, topP: 1, seed: 0 });
    sender.send(
      encodeFrame({ kind: 'hidden', jobId: 'late', position: 3, sample: true, width: OPTIONS.hidden, data: hidden }),
    );
    sender.send(Uint8Array.of(1, 2, 3));
    await vi.waitFor(() => expect(failures).toHaveLength(3));
    await host.idle();
    expect(failures).toEqual(['UNKNOWN_JOB stray', 'OUT_OF_ORDER late', 'BAD_FRAME ']);
    host.stop();
    sender.close();
    downstream.close();

    // The pipeline still answers afterwards.
    const tokens: number[] = [];
    for await (const token of pipeline.generate(job, {
      jobId: 'y',
      prompt: ids,
      maxNewTokens: 24,
      eos: new Set([eos]),
    }))
      tokens.push(token);
    expect(tokens).toEqual(expected.get(`${PROMPTS[0]}|greedy`));
    await pipeline.close();
    await Promise.all(sessions.map((s) => s.release()));
  }, 120_000);
});
