// One answer from the room's mesh for the chat: the job itself (streamed, failover, cancel) and its record on
// the server (jobs.start when the first peer takes it, jobs.attempt for each later server and each checker,
// jobs.finish at the end, jobs.check after a spot check). The server lets finish and check name only the peers
// it recorded, so this side names only those whose record went through.
import type { EngineMessage } from '../../../shared/engine-protocol.ts';
import { type MeshOutcome, MeshJobError, type PeerView } from '../../../shared/mesh/job-requester.ts';
import type { JobSampling, ModelRef } from '../../../shared/peer-protocol.ts';
import type { MeshRoom } from './mesh-store.ts';
import { trpc } from '../../lib/trpc.ts';

export interface MeshAnswer {
  /** The finished answer; null when it was stopped before any peer answered. */
  result: Promise<MeshOutcome | null>;
  stop(): void;
}

/** Once more after a moment: a peer's "sharing" can reach us over the data channel before the server hears it. */
const twice = <T>(call: () => Promise<T>) =>
  call().catch(() => new Promise((resolve) => setTimeout(resolve, 1000)).then(call));

export function askMesh(
  room: MeshRoom,
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
      record = twice(() => trpc.jobs.start.mutate({ room: room.room, serverPeerId: peer.peerId, model })).then(
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
        await twice(() => trpc.jobs.attempt.mutate({ id, peerId: peer.peerId, role }));
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
  const finish = async (
    details: Parameters<typeof trpc.jobs.finish.mutate>[0] extends infer T ? Omit<T, 'id'> : never,
  ) => {
    const id = await record;
    await Promise.all(recording);
    if (id) await trpc.jobs.finish.mutate({ id, ...details }).catch(() => undefined);
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
            return trpc.jobs.check.mutate({ id, result: witnessed ? check.result : 'UNRESOLVED', excludedPeerIds });
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
  return { result, stop: () => job.cancel() };
}
