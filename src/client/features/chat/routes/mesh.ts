// The mesh route: a peer in the room that shares a model answers (failover, spot checks and job records are
// askMesh's); which models the room shares, and a spot check's correction of a wrong answer.
import type { EngineMessage } from '../../../../shared/engine-protocol.ts';
import type { JobSampling, ModelRef } from '../../../../shared/peer-protocol.ts';
import { askMesh } from '../../../../shared/mesh/mesh-answer.ts';
import { trpcJobRecorder } from '../../mesh/job-records.ts';
import type { MeshRoom } from '../../mesh/mesh-store.ts';
import { formatReadout } from '../readout.ts';
import { type Answer, streamedAnswer } from './answer.ts';

export interface SharedModel {
  ref: ModelRef;
  /** Names of the peers sharing it now. */
  peers: string[];
  /** The fastest of those peers' measured tokens/s, when any measured. */
  tokensPerSecond: number | null;
}

/** Models that peers in the room share now, best-offered first (by how many peers share each). */
export function sharedModels(room: MeshRoom | null): SharedModel[] {
  if (!room) return [];
  const byModel = new Map<string, SharedModel>();
  for (const peer of room.node.list()) {
    if (!peer.capabilities?.sharing || room.node.requester.isExcluded(peer)) continue;
    for (const ref of peer.capabilities.models) {
      const entry = byModel.get(ref.sha256) ?? { ref, peers: [], tokensPerSecond: null };
      entry.peers.push(peer.name);
      const speed = peer.capabilities.tokensPerSecond;
      if (speed !== null && speed > (entry.tokensPerSecond ?? 0)) entry.tokensPerSecond = speed;
      byModel.set(ref.sha256, entry);
    }
  }
  return [...byModel.values()].sort((a, b) => b.peers.length - a.peers.length);
}

export function meshAnswer(room: MeshRoom, model: ModelRef, prompt: EngineMessage[], sampling: JobSampling): Answer {
  return streamedAnswer((emit) => {
    let shown = '';
    const job = askMesh(room, trpcJobRecorder, model, prompt, sampling, (text) => {
      // askMesh reports the whole text so far; the iterator yields what is new.
      emit(text.slice(shown.length));
      shown = text;
    });
    const result = job.result.then((outcome) => {
      if (!outcome)
        return {
          text: '',
          record: { route: 'MESH' as const, modelId: model.id },
          readout: formatReadout({ route: 'mesh-unanswered' }),
        };
      const readout = formatReadout({ route: 'mesh', outcome });
      return {
        text: outcome.text,
        record: {
          route: 'MESH' as const,
          modelId: model.id,
          tokensPerSecond: outcome.tokensPerSecond,
          ttftMs: outcome.ttftMs,
          tokensOut: outcome.tokenIds.length,
        },
        readout,
        // A spot check that catches a wrong answer replaces it with the checked one.
        corrected: outcome.check?.then((check) => {
          if (!check.corrected) return null;
          const excluded = check.excluded
            .map((id) => outcome.servedBy.find((p) => p.peerId === id)?.name ?? 'a peer')
            .join(', ');
          return {
            text: check.corrected.text,
            readout: `${readout} · corrected by a spot check; ${excluded} excluded from this room's jobs`,
          };
        }),
      };
    });
    return { result, stop: () => job.stop() };
  });
}
