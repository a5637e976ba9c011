// Stages of one process connected by in-memory wires with the data channel's semantics (frames, buffering,
// backpressure): the same hosts and requester a mesh pipeline uses, for tests and benchmarks (docs/pipeline.md).
import { type FrameWire, type MemoryWireOptions, type WireStats, memoryWirePair } from './frame-wire.ts';
import { type PipelineJob, PipelineJobSchema } from './job.ts';
import { PipelineJobError, type PipelineRequest, PipelineRequester } from './pipeline-requester.ts';
import { StageHost } from './stage-host.ts';
import { StageRunner, type StageRunnerOptions } from './stage-runner.ts';
import type { StageSession } from './stage-session.ts';

export interface InProcessPipeline {
  hosts: StageHost[];
  /** What crossed each hop: requester to stage 0, stage 0 to 1, ..., last stage to the requester. */
  hops: WireStats[];
  /** Opens `job` on every stage, then yields its tokens. */
  generate(job: Omit<PipelineJob, 'jobId'>, request: PipelineRequest): AsyncGenerator<number>;
  close(): Promise<void>;
}

export function inProcessPipeline(
  sessions: StageSession[],
  options: MemoryWireOptions & StageRunnerOptions = {},
): InProcessPipeline {
  const wires = Array.from({ length: sessions.length + 1 }, () => memoryWirePair(options));
  const hosts = sessions.map(
    (session, i) =>
      new StageHost(new StageRunner(session, options), {
        upstream: wires[i]![1] as FrameWire,
        downstream: wires[i + 1]![0] as FrameWire,
      }),
  );
  const runners = hosts.map((h) => h.runner);
  if (!runners[0]?.first || !runners.at(-1)?.last || runners.some((r, i) => i > 0 && r.first))
    throw new Error('the stages must run from the embeddings (first) to the LM head (last), in order');
  const requester = new PipelineRequester(wires[0]![0], wires.at(-1)![1]);
  for (const host of hosts)
    host.onFailure((failure) =>
      requester.fail(
        failure.jobId,
        new PipelineJobError(failure.code, `stage ${hosts.indexOf(host)}: ${failure.message}`),
      ),
    );
  return {
    hosts,
    hops: wires.map(([sender]) => sender.stats),
    async *generate(job, request) {
      const opened = PipelineJobSchema.parse({ ...job, jobId: request.jobId });
      for (const host of hosts) host.open(opened);
      try {
        yield* requester.generate(request);
      } finally {
        for (const host of hosts) host.close(request.jobId);
      }
    },
    async close() {
      requester.stop();
      for (const host of hosts) host.stop();
      await Promise.all(hosts.map((h) => h.idle()));
      for (const [a] of wires) a.close();
    },
  };
}
