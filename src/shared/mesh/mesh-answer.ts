// One answer from a room's mesh, for the browser's chat and the server's OpenAI-compatible API alike: the job
// itself (streamed, failover, cancel) and its record (start when the first peer takes it, attempt for each later
// server and each checker, finish at the end, check after a spot check). The browser records through tRPC's jobs.*,
// the server through the same service directly. The record lets finish and check name only the peers it recorded,
// so this side names only those whose record went through.
import type { z } from 'zod';
import type { EngineMessage } from '../engine-protocol.ts';
import type { JobSampling, ModelRef } from '../peer-protocol.ts';
import type { JobAttemptSchema, JobCheckSchema, JobFinishSchema, JobStartSchema } from '../schemas/jobs.ts';
import { type JobRequester, type MeshOutcome, MeshJobError, type PeerView } from './job-requester.ts';

/** Where a job's record goes (jobs.start, attempt, finish, check): each call validated by the jobs schemas. */
export interface JobRecorder {
  start(input: z.infer<typeof JobStartSchema>): Promise<{ id: string }>;
  attempt(input: z.infer<typeof JobAttemptSchema>): Promise<unknown>;
  finish(input: z.infer<typeof JobFinishSchema>): Promise<unknown>;
  check(input: z.infer<typeof JobCheckSchema>): Promise<unknown>;
}

/** The room a job runs in: its slug and the requester of this side's node there. */
export interface AskRoom {
  room: string;
  node: { requester: JobRequester };
}

export interface MeshAnswer {
  /** The finished answer, once its records are written; null when it was stopped before any peer answered. */
  result: Promise<MeshOutcome | null>;
  /** The job's own end, as soon as it is known, before its records: for a recorder that waits for the answer. */
  ended: Promise<MeshOutcome>;
  stop(): void;
}

/** Once more after a moment: a peer's "sharing" can reach us over the data channel before the server hears it. */
export const twice = <T>(call: () => Promise<T>) =>
  call().catch(() => new Promise((resolve) => setTimeout(resolve, 1000)).then(call));

export function askMesh(
  room: AskRoom,
  records: JobRecorder,
  model: ModelRef,
  messages: EngineMessage[],
  sampling: JobSampling,
  onText: (text: string) => void,
): MeshAnswer {
  let record: Promise<string | null> | null = null;
  /** Peers the server recorded taking this job, by role. */
  const recorded = { SERVER: new Set<string>(), CHECKER: new Set<string>() };
  const recording: Promise<unknown>[] = [];
  let text = '';
  // Records are for the person's history and the room's stats: the answer never waits for them.
  const took = (peer: PeerView, role: 'SERVER' | 'CHECKER') => {
    if (!record) {
      if (role === 'CHECKER') return;
      record = twice(() => records.start({ room: room.room, serverPeerId: peer.peerId, model })).then(
        (row) => {
          recorded.SERVER.add(peer.peerId);
          return row.id;
        },
        () => null,
      );
      return;
    }
    const started = record;
    recording.push(
      (async () => {
        const id = await started;
        if (!id) return;
        await twice(() => records.attempt({ id, peerId: peer.peerId, role }));
        recorded[role].add(peer.peerId);
      })().catch(() => undefined),
    );
  };
  const job = room.node.requester.run({
    model,
    messages,
    sampling,
    onToken: (token) => {
      text += token.text;
      onText(text);
    },
    onServer: (peer) => took(peer, 'SERVER'),
    onChecker: (peer) => took(peer, 'CHECKER'),
  });
  const finish = async (details: Omit<z.infer<typeof JobFinishSchema>, 'id'>) => {
    const id = await record;
    await Promise.all(recording);
    if (id) await records.finish({ id, ...details }).catch(() => undefined);
    return id;
  };
  const result = job.result.then(
    async (outcome) => {
      const last = outcome.servedBy.at(-1);
      const backend =
        outcome.backend === 'webgpu' || outcome.backend === 'wasm' || outcome.backend === 'cpu'
          ? outcome.backend
          : undefined;
      const id = await finish({
        outcome: outcome.reason === 'interrupted' ? 'CANCELLED' : 'COMPLETED',
        ...(last && recorded.SERVER.has(last.peerId) ? { serverPeerId: last.peerId } : {}),
        ...(backend ? { backend } : {}),
        tokensIn: outcome.tokensIn,
        tokensOut: outcome.tokenIds.length,
        ttftMs: outcome.ttftMs,
        tokensPerSecond: outcome.tokensPerSecond,
        failoverCount: outcome.failovers,
      });
      if (id && outcome.check) {
        void outcome.check
          .then(async (check) => {
            await Promise.all(recording);
            // The server takes a verdict only from a check it saw a checker take, and names only recorded peers.
            const witnessed = check.checkers.some((peerId) => recorded.CHECKER.has(peerId));
            const excludedPeerIds = witnessed
              ? check.excluded
                  .filter((peerId) => recorded.SERVER.has(peerId) || recorded.CHECKER.has(peerId))
                  .slice(0, 4)
              : [];
            return records.check({ id, result: witnessed ? check.result : 'UNRESOLVED', excludedPeerIds });
          })
          .catch(() => undefined);
      }
      return outcome;
    },
    async (error: unknown) => {
      const code = error instanceof MeshJobError ? error.code : 'FAILED';
      await finish({
        outcome: code === 'CANCELLED' ? 'CANCELLED' : 'FAILED',
        tokensIn: 0,
        tokensOut: 0,
        failoverCount: 0,
        errorCode: code,
      });
      if (code === 'CANCELLED') return null;
      throw error;
    },
  );
  return { result, ended: job.result, stop: () => job.cancel() };
}
