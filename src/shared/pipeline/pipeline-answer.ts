// One pipeline answer from a room (docs/pipeline.md), for the browser's chat and a server-side requester alike,
// with what a whole-model mesh answer has (src/shared/mesh/mesh-answer.ts): its record (jobs.start naming every
// stage's peer and its layers once each stage opened the job, jobs.attempt for a peer taking over a stage and for
// each checker, jobs.finish, jobs.check) and its spot check, drawn at the room's rate (newcomers always): the job
// re-run with the same seed by a peer holding the whole model with these exact weights when there is one, else by
// another chain of peers of other users, its tokens compared (spot-check.ts, a chain judged as one party). A chain
// caught is then narrowed to the stage that lied where re-runs with one stage swapped can show it (localize.ts).
// Past 300 lines: the answer, its check's re-runs and their record share the job's chain and recorded peers; which
// stage lied (localize.ts) and how a check judges (spot-check.ts) are their own modules.
import type { z } from 'zod';
import type { EngineMessage } from '../engine-protocol.ts';
import type { ModelRef, PeerCapabilities } from '../peer-protocol.ts';
import { JOB_LIMITS, type JobFinishSchema } from '../schemas/jobs.ts';
import type { GeneratedToken } from '../mesh/engine-gate.ts';
import type { JobRequester, PeerView } from '../mesh/job-requester.ts';
import { type JobRecorder, twice } from '../mesh/mesh-answer.ts';
import { type CheckPeer, type SpotCheck, blameMembers, spotCheck } from '../mesh/spot-check.ts';
import { type Blame, PIPELINE_CHECK_LIMITS, localizeMismatch, standInsFor } from './localize.ts';
import type { PipelineJob } from './job.ts';
import { PipelineJobError } from './pipeline-requester.ts';
import type { PipelineReadout, RoomPipeline, StagePlacement } from './room-pipeline.ts';

export interface PipelineAsk {
  /** The model's catalogue id and the fingerprint of its weights: the record's, and what a whole-model checker shares. */
  model: ModelRef;
  job: Omit<PipelineJob, 'jobId'>;
  /** The prompt's token ids (the chat template applied to `messages`). */
  prompt: readonly number[];
  maxNewTokens: number;
  eos: ReadonlySet<number>;
  chunk?: number;
  /** The stages to use; without them the room's chain. */
  stages?: StagePlacement[];
  /** The conversation the prompt came from: with it, a peer holding the whole model may check the answer. */
  messages?: EngineMessage[];
  signal?: AbortSignal;
  /**
   * Called once the job's tokens stopped (answered, stopped or failed), before its record is finished: for a
   * recorder that writes only once the answer is out (src/server/openai/pipeline-chat.ts).
   */
  onEnded?: () => void;
  /** Re-runs a confirmed mismatch may cost to find the stage that lied (PIPELINE_CHECK_LIMITS.localizeRuns). */
  localizeRuns?: number;
}

/** What checks a pipeline answer: a peer holding the whole model, or a chain of stage peers (its `members`). */
export type PipelineChecker = CheckPeer &
  ({ kind: 'whole'; peer: PeerView } | { kind: 'chain'; stages: StagePlacement[] });

export interface PipelineOutcome {
  tokenIds: number[];
  /** The job's readout (each stage's peer, failovers, speed); null when it was stopped. */
  readout: PipelineReadout | null;
  stopped: boolean;
  /** The spot check, when this answer was drawn for one; `corrected.text` is empty (the caller detokenizes). */
  check?: Promise<SpotCheck>;
}

export interface PipelineRoom {
  room: string;
  /** This side's node there (MeshNode): its pipelines, its requester (trust, exclusions, whole-model checks), its peers. */
  node: {
    pipelines: RoomPipeline;
    requester: JobRequester;
    list(): readonly { peerId: string; userId: string; capabilities: PeerCapabilities | null }[];
  };
}

/** The job as a chain runs it: the answer and its spot check's re-run on another chain ask the same. */
function chainRun(ask: PipelineAsk) {
  return {
    model: ask.model.id,
    job: ask.job,
    prompt: ask.prompt,
    maxNewTokens: ask.maxNewTokens,
    eos: ask.eos,
    ...(ask.chunk ? { chunk: ask.chunk } : {}),
  };
}

/** The party a chain of stage peers makes for the spot check: judged, skipped and excluded together. */
function chainParty(members: readonly { peerId: string; userId: string }[]): CheckPeer {
  return { peerId: members[0]?.peerId ?? '', userId: members[0]?.userId ?? '', members: [...members] };
}

/**
 * Runs `ask` on the room's pipeline, calling `onToken` with each token; resolves once the job ended and its record
 * was finished (a stopped job with the tokens so far), or rejects with the job's PipelineJobError.
 */
export async function askPipeline(
  room: PipelineRoom,
  records: JobRecorder,
  ask: PipelineAsk,
  onToken: (token: number) => void,
): Promise<PipelineOutcome> {
  const { pipelines, requester } = room.node;
  let record: Promise<string | null> | null = null;
  const recorded = { SERVER: new Set<string>(), CHECKER: new Set<string>() };
  const recording: Promise<unknown>[] = [];
  /** Every peer that ran a stage of the answer (a failover adds one), with its user. */
  const served = new Map<string, string>();
  /**
   * What the job's callbacks learn: the last stage's peer now, whether every stage's peer says its stages are cut
   * from the weights `ask.model` names (then a whole-model peer may check), the failovers and the readout.
   */
  const job = {
    last: null as string | null,
    sameWeights: true,
    failovers: 0,
    readout: null as PipelineReadout | null,
    stages: [] as StagePlacement[],
  };
  const attempt = (peerId: string, role: 'SERVER' | 'CHECKER', layers?: StagePlacement['layers']) => {
    const started = record;
    if (!started) return;
    recording.push(
      (async () => {
        const id = await started;
        if (!id) return;
        await twice(() => records.attempt({ id, peerId, role, ...(layers ? { layers } : {}) }));
        recorded[role].add(peerId);
      })().catch(() => undefined),
    );
  };
  const peerOf = (peerId: string) => room.node.list().find((peer) => peer.peerId === peerId);
  const userOf = (peerId: string) => peerOf(peerId)?.userId ?? peerId;
  const tokenIds: number[] = [];
  let stopped = false;
  const finish = async (details: Omit<z.infer<typeof JobFinishSchema>, 'id'>) => {
    const id = await record;
    await Promise.all(recording);
    if (id) await records.finish({ id, ...details }).catch(() => undefined);
    return id;
  };
  try {
    for await (const token of pipelines.generate({
      ...chainRun(ask),
      ...(ask.stages ? { stages: ask.stages } : {}),
      ...(ask.signal ? { signal: ask.signal } : {}),
      onReadout: (r) => (job.readout = r),
      onOpened: (stages) => {
        for (const stage of stages) served.set(stage.peerId, userOf(stage.peerId));
        job.stages = stages.map(({ peerId, layers }) => ({ peerId, layers }));
        job.sameWeights = stages.every(
          (stage) => peerOf(stage.peerId)?.capabilities?.pipeline?.version === ask.model.sha256,
        );
        job.last = stages.at(-1)?.peerId ?? null;
        // Records are for the person's history and the room's stats: the answer never waits for them.
        record = twice(() =>
          records.start({
            room: room.room,
            serverPeerId: job.last ?? '',
            model: ask.model,
            stages: stages.map(({ peerId, layers }) => ({ peerId, layers })),
          }),
        ).then(
          (row) => {
            for (const stage of stages) recorded.SERVER.add(stage.peerId);
            return row.id;
          },
          () => null,
        );
      },
      onFailover: (failover) => {
        job.failovers++;
        served.set(failover.to, userOf(failover.to));
        if (failover.from === job.last) job.last = failover.to;
        attempt(failover.to, 'SERVER', failover.layers);
      },
    })) {
      tokenIds.push(token);
      onToken(token);
    }
    ask.onEnded?.();
  } catch (error) {
    ask.onEnded?.();
    const code = error instanceof PipelineJobError ? error.code : 'FAILED';
    if (code !== 'ABORTED' || tokenIds.length === 0) {
      await finish({
        outcome: code === 'ABORTED' ? 'CANCELLED' : 'FAILED',
        tokensIn: ask.prompt.length,
        tokensOut: tokenIds.length,
        failoverCount: Math.min(job.failovers, JOB_LIMITS.failovers),
        errorCode: /^[A-Z_]{1,64}$/.test(code) ? code : 'FAILED',
      });
      if (code !== 'ABORTED') throw error;
      return { tokenIds, readout: null, stopped: true };
    }
    stopped = true;
  }
  const done = job.readout;
  const servedBy = job.last;
  const id = await finish({
    outcome: stopped ? 'CANCELLED' : 'COMPLETED',
    ...(servedBy && recorded.SERVER.has(servedBy) ? { serverPeerId: servedBy } : {}),
    tokensIn: ask.prompt.length,
    tokensOut: tokenIds.length,
    ...(done ? { ttftMs: done.ttftMs, tokensPerSecond: Math.min(done.tokensPerSecond, 100_000) } : {}),
    failoverCount: Math.min(job.failovers, JOB_LIMITS.failovers),
  });
  const outcome: PipelineOutcome = { tokenIds, readout: done, stopped };
  const madeBy = chainParty([...served].map(([peerId, userId]) => ({ peerId, userId })));
  if (stopped || tokenIds.length === 0 || !requester.drawsCheck(madeBy.members!.map((m) => m.userId))) return outcome;
  const jobId = done?.jobId ?? globalThis.crypto.randomUUID();
  // A peer holding the whole model checks only stages cut from the very weights it holds.
  const { messages: _conversation, ...unchecked } = ask;
  const checked: PipelineAsk = job.sameWeights ? ask : unchecked;
  // A chain that changed peers mid-answer cannot be re-run stage by stage: its mismatch blames the whole chain.
  const chainServed = job.failovers === 0 ? job.stages : undefined;
  const took = (peerId: string) => attempt(peerId, 'CHECKER');
  outcome.check = checkPipeline(room, checked, jobId, tokenIds, madeBy, took, chainServed).then(async (check) => {
    await Promise.all(recording);
    if (!id) return check;
    // The server takes a verdict only from a check it saw a checker take, and names only recorded peers.
    const witnessed = check.checkers.some((peerId) => recorded.CHECKER.has(peerId));
    const excludedPeerIds = witnessed
      ? check.excluded
          .filter((peerId) => recorded.SERVER.has(peerId) || recorded.CHECKER.has(peerId))
          .slice(0, JOB_LIMITS.excludedPerCheck)
      : [];
    await records
      .check({ id, result: witnessed ? check.result : 'UNRESOLVED', excludedPeerIds })
      .catch(() => undefined);
    return check;
  });
  outcome.check.catch(() => undefined);
  return outcome;
}

/**
 * The spot check of a finished pipeline answer made by the chain `madeBy`: a peer holding the whole model with the
 * ask's exact weights (given the conversation) re-runs it, else a chain of peers of other users; on a mismatch a
 * second opinion decides (spot-check.ts). `took` names each checker peer as it takes the job (for the record).
 * A mismatch two checkers confirm is narrowed to the stage peer that lied when swapping stages of the `served`
 * chain shows it (localize.ts); without `served` (or a stage nobody can stand in for) the whole chain is blamed.
 */
export async function checkPipeline(
  room: PipelineRoom,
  ask: PipelineAsk,
  jobId: string,
  tokenIds: readonly number[],
  madeBy: CheckPeer,
  took: (peerId: string) => void,
  served?: readonly StagePlacement[],
): Promise<SpotCheck> {
  const { pipelines, requester } = room.node;
  const tokens: GeneratedToken[] = tokenIds.map((tokenId, index) => ({ index, tokenId, text: '' }));
  const verdict = await spotCheck<CheckPeer | PipelineChecker>({
    jobId,
    tokens,
    madeBy: tokens.map(() => madeBy),
    candidates: (skipUsers) => {
      const whole: PipelineChecker[] = ask.messages
        ? requester.drawCheckers(ask.model, skipUsers).map((peer) => ({
            kind: 'whole',
            peer,
            peerId: peer.peerId,
            userId: peer.userId,
          }))
        : [];
      const chain = pipelines.chain(ask.model.id, skipUsers);
      const byPeer = new Map(room.node.list().map((peer) => [peer.peerId, peer.userId]));
      const chained: PipelineChecker[] = chain
        ? [
            {
              kind: 'chain',
              stages: chain,
              ...chainParty(chain.map((s) => ({ peerId: s.peerId, userId: byPeer.get(s.peerId) ?? s.peerId }))),
            },
          ]
        : [];
      return [...whole, ...chained];
    },
    rerun: async (checker) => {
      if (!('kind' in checker)) return null;
      if (checker.kind === 'whole') {
        const answer = await requester.rerunOn(
          checker.peer,
          {
            model: ask.model,
            messages: ask.messages ?? [],
            sampling: {
              temperature: ask.job.temperature,
              topP: ask.job.topP,
              seed: ask.job.seed,
              maxNewTokens: ask.maxNewTokens,
            },
          },
          () => took(checker.peerId),
        );
        return answer?.map((token) => ({ ...token, text: '' })) ?? null;
      }
      const again = await rerunChain(pipelines, ask, checker.stages, took);
      return again?.map((tokenId, index) => ({ index, tokenId, text: '' })) ?? null;
    },
  });
  const corrected = verdict.check.corrected?.tokenIds;
  if (verdict.check.result !== 'MISMATCH' || verdict.mismatch !== madeBy || !corrected)
    return requester.settle(jobId, verdict);
  const blame = served
    ? await localizeMismatch({
        stages: served,
        served: tokenIds,
        corrected,
        standIns: (index) => {
          const capability = room.node.list().find((p) => p.peerId === served[index]?.peerId)?.capabilities?.pipeline;
          const skip = new Set(madeBy.members?.map((m) => m.userId) ?? [madeBy.userId]);
          return standInsFor(pipelines.hosts(ask.model.id), capability, served[index]!, served, skip);
        },
        // Only the stand-in is recorded as a checker: the served chain's peers are the job's servers already.
        rerun: (stages) =>
          rerunChain(pipelines, ask, stages, (peerId) => {
            if (!served.some((s) => s.peerId === peerId)) took(peerId);
          }),
        maxRuns: Math.max(0, Math.min(ask.localizeRuns ?? PIPELINE_CHECK_LIMITS.localizeRuns, JOB_LIMITS.stages)),
      })
    : ({
        scope: 'chain',
        runs: 0,
        why: 'a stage changed peers mid-answer (a failover): no swap re-runs it',
      } satisfies Blame);
  const culprits = blame.scope === 'stage' ? blame.stages.map((s) => s.peerId) : null;
  return requester.settle(jobId, blameMembers(verdict, { culprits, runs: blame.runs, why: blame.why }, jobId));
}

/** Runs the job again on `stages` (a checker's chain, or the served one with a stage swapped); null if it failed. */
async function rerunChain(
  pipelines: RoomPipeline,
  ask: PipelineAsk,
  stages: StagePlacement[],
  took: (peerId: string) => void,
): Promise<number[] | null> {
  const again: number[] = [];
  try {
    for await (const tokenId of pipelines.generate({
      ...chainRun(ask),
      stages,
      onOpened: (opened) => opened.forEach((stage) => took(stage.peerId)),
    }))
      again.push(tokenId);
  } catch {
    return null;
  }
  return again;
}
