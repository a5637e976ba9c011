// One answer from the room's mesh for the chat: the job itself (streamed, failover, cancel) and its record on
// the server (jobs.start when a peer takes it, jobs.finish at the end, jobs.check after a spot check).
import type { EngineMessage } from '../../../shared/engine-protocol.ts';
import { type MeshOutcome, MeshJobError, type SpotCheck } from '../../../shared/mesh/job-requester.ts';
import type { JobSampling, ModelRef } from '../../../shared/peer-protocol.ts';
import type { MeshRoom } from '../../../shared/rtc/mesh-room.ts';
import { trpc } from '../../lib/trpc.ts';

export interface MeshAnswer {
  /** The finished answer; null when it was stopped before any peer answered. */
  result: Promise<MeshOutcome | null>;
  stop(): void;
}

const checkResult = (check: SpotCheck) => (check.corrected || (!check.match && check.excluded.length) ? 'MISMATCH' : check.match ? 'MATCH' : 'UNRESOLVED');

export function askMesh(room: MeshRoom, model: ModelRef, messages: EngineMessage[], sampling: JobSampling, onText: (text: string) => void): MeshAnswer {
  let record: Promise<string | null> | null = null;
  let text = '';
  const job = room.node.requester.run({
    model,
    messages,
    sampling,
    onToken: (token) => {
      text += token.text;
      onText(text);
    },
    onServer: (peer) => {
      // Records are for the person's history and the room's stats: the answer never waits for them.
      const start = () => trpc.jobs.start.mutate({ room: room.room, serverPeerId: peer.peerId, model }).then((row) => row.id);
      // Once more after a moment: the peer's "sharing" can reach us over the data channel before the server hears it.
      record ??= start()
        .catch(() => new Promise((resolve) => setTimeout(resolve, 1000)).then(start))
        .catch(() => null);
    },
  });
  const finish = async (details: Parameters<typeof trpc.jobs.finish.mutate>[0] extends infer T ? Omit<T, 'id'> : never) => {
    const id = await record;
    if (id) await trpc.jobs.finish.mutate({ id, ...details }).catch(() => undefined);
    return id;
  };
  const result = job.result.then(
    async (outcome) => {
      const last = outcome.servedBy.at(-1);
      const backend = outcome.backend === 'webgpu' || outcome.backend === 'wasm' || outcome.backend === 'cpu' ? outcome.backend : undefined;
      const id = await finish({
        outcome: outcome.reason === 'interrupted' ? 'CANCELLED' : 'COMPLETED',
        ...(last ? { serverPeerId: last.peerId } : {}),
        ...(backend ? { backend } : {}),
        tokensIn: outcome.tokensIn,
        tokensOut: outcome.tokenIds.length,
        ttftMs: outcome.ttftMs,
        tokensPerSecond: outcome.tokensPerSecond,
        failoverCount: outcome.failovers,
      });
      if (id && outcome.check) {
        void outcome.check.then((check) => trpc.jobs.check.mutate({ id, result: checkResult(check), excludedPeerIds: check.excluded.slice(0, 4) }).catch(() => undefined));
      }
      return outcome;
    },
    async (error: unknown) => {
      const code = error instanceof MeshJobError ? error.code : 'FAILED';
      await finish({ outcome: code === 'CANCELLED' ? 'CANCELLED' : 'FAILED', tokensIn: 0, tokensOut: 0, failoverCount: 0, errorCode: code });
      if (code === 'CANCELLED') return null;
      throw error;
    },
  );
  return { result, stop: () => job.cancel() };
}
