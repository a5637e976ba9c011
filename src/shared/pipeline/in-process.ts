// Stages of one process connected by wires: in-memory pairs with the data channel's semantics (frames, buffering,
// backpressure, a largest message), or real data channels. The same hosts and requester a mesh pipeline uses, for
// tests and benchmarks (docs/pipeline.md).
import { type FrameWire, type MemoryWireOptions, type WireStats, memoryWirePair } from './frame-wire.ts';
import { type PipelineJob, PipelineJobSchema, stageJob } from './job.ts';
import { PipelineJobError, type PipelineRequest, PipelineRequester } from './pipeline-requester.ts';
import { FrameLog } from './frame-log.ts';
import { StageHost } from './stage-host.ts';
import { StageRunner, type StageRunnerOptions } from './stage-runner.ts';
import type { StageSession } from './stage-session.ts';

export type CountedWire = FrameWire & { stats: WireStats };

export interface ConnectedPipeline {
  hosts: StageHost[];
  /** What crossed each hop: requester to stage 0, stage 0 to 1, ..., last stage to the requester. */
  hops: WireStats[];
  /** Opens `job` on every stage, then yields its tokens. */
  generate(job: Omit<PipelineJob, 'jobId'>, request: PipelineRequest): AsyncGenerator<number>;
  /**
   * Stage `index` is gone (its wires closed, frames on them lost): `session` takes over its layers, rebuilds the
   * open jobs' KV cache from what the stage before it (or the requester) kept, and the answers go on.
   */
  replaceStage(
    index: number,
    session: StageSession,
    hops: [[CountedWire, CountedWire], [CountedWire, CountedWire]],
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * Hosts `sessions` (in layer order) as stages joined by `hops`: hop i's first end sends into stage i (hop 0 from
 * the requester), its second end is where stage i receives; the last hop brings sampled tokens back.
 */
export function connectPipeline(
  sessions: StageSession[],
  hops: [CountedWire, CountedWire][],
  options: StageRunnerOptions = {},
): ConnectedPipeline {
  if (hops.length !== sessions.length + 1)
    throw new Error(`${sessions.length} stages need ${sessions.length + 1} hops`);
  const host = (session: StageSession, upstream: FrameWire, downstream: FrameWire) =>
    new StageHost(new StageRunner(session, options), { upstream, downstream, log: new FrameLog() });
  const hosts = sessions.map((session, i) => host(session, hops[i]![1], hops[i + 1]![0]));
  const runners = hosts.map((h) => h.runner);
  if (!runners[0]?.first || !runners.at(-1)?.last || runners.some((r, i) => i > 0 && r.first))
    throw new Error('the stages must run from the embeddings (first) to the LM head (last), in order');
  const requester = new PipelineRequester(hops[0]![0], hops.at(-1)![1]);
  const report = (stage: StageHost) =>
    stage.onFailure((failure) =>
      requester.fail(
        failure.jobId,
        new PipelineJobError(failure.code, `stage ${hosts.indexOf(stage)}: ${failure.message}`),
      ),
    );
  const reporting = hosts.map(report);
  return {
    hosts,
    get hops() {
      return hops.map(([sender]) => sender.stats);
    },
    async *generate(job, request) {
      const opened = PipelineJobSchema.parse({ ...stageJob(job, request), jobId: request.jobId });
      for (const host of hosts) host.open(opened);
      try {
        yield* requester.generate(request);
      } finally {
        for (const host of hosts) host.close(request.jobId);
      }
    },
    async replaceStage(index, session, [into, out]) {
      const old = hosts[index];
      if (!old) throw new Error(`there is no stage ${index}`);
      old.stop();
      reporting[index]?.();
      hops[index]?.[0].close();
      hops[index + 1]?.[0].close();
      const replacement = host(session, into[1], out[0]);
      if (replacement.runner.first !== old.runner.first || replacement.runner.last !== old.runner.last)
        throw new Error(`the replacement does not hold stage ${index}'s part of the model`);
      for (const job of old.openJobs()) replacement.open(job);
      hosts[index] = replacement;
      reporting[index] = report(replacement);
      hops[index] = into;
      hops[index + 1] = out;
      const after = hosts[index + 1];
      if (after) after.setUpstream(out[1]);
      else requester.setFromLast(out[1]);
      // How far the stage after the replaced one got: the replacement rebuilds that far and computes the rest.
      const upTo = async (jobId: string) => {
        if (!after) return requester.sampledPosition(jobId);
        await after.idle();
        return after.runner.cached(jobId);
      };
      const before = hosts[index - 1];
      await (before ? before.redirect(into[0], upTo) : requester.redirect(into[0], upTo));
    },
    async close() {
      requester.stop();
      for (const host of hosts) host.stop();
      await Promise.all(hosts.map((h) => h.idle()));
      for (const [a] of hops) a.close();
    },
  };
}

/** Stages of one process over in-memory wires. */
export function inProcessPipeline(
  sessions: StageSession[],
  options: MemoryWireOptions & StageRunnerOptions = {},
): ConnectedPipeline {
  const hops = Array.from({ length: sessions.length + 1 }, () => memoryWirePair(options));
  return connectPipeline(sessions, hops, options);
}
