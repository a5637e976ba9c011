// InferenceJob records of pipeline jobs the server asks for /v1 (docs/pipeline.md, "Asking from /v1"): one model's
// layers run by a chain of stage peers, so the record names every stage's peer (role STAGE, each looked up in the
// room's presence as the job went to it, and each replacement after a failover as it took over), and its server is
// the last stage's (the one that sampled the answer's tokens). Written once, when the job is over: the embedded
// database runs its queries on the server's own thread, so nothing is written while tokens stream (as for
// whole-model jobs, src/server/openai/mesh-chat.ts). Peers agree on a pipeline's model by id, with no fingerprint of
// the stage files yet, so the record has no model sha256.
import type { PrismaClient } from '../db/client.ts';
import type { PeerLookup } from './jobs.ts';
import { roomBySlug } from './room.ts';

export const STAGE_ROLE = 'STAGE';

/** A stage's peer, as the room's presence knew it when the job went to it (null: not there, or not sharing). */
export type StagePeer = Awaited<ReturnType<PeerLookup>>;

export interface PipelineJobRecord {
  room: string;
  modelId: string;
  /** When the job went to its stages. */
  startedAt: Date;
  /** Each stage's peer in layer order, then each replacement after a failover, by peer id. */
  peers: { peerId: string; peer: Promise<StagePeer> }[];
  /** The peer of the last stage as the job ended (the one that sampled its last tokens). */
  lastPeerId: string | null;
  outcome: 'COMPLETED' | 'CANCELLED' | 'FAILED';
  tokensIn: number;
  tokensOut: number;
  ttftMs: number | null;
  tokensPerSecond: number | null;
  failoverCount: number;
  errorCode: string | null;
}

/** Writes a finished pipeline job's record for `userId` (the key's account); returns its id. */
export async function recordPipelineJob(db: PrismaClient, userId: string, record: PipelineJobRecord) {
  const room = await roomBySlug(db, record.room);
  const peers = new Map<string, NonNullable<StagePeer>>();
  for (const { peerId, peer } of record.peers) {
    const found = await peer.catch(() => null);
    // A peer recorded only when it was in the room and sharing as it took its stage.
    if (found?.sharing && !peers.has(peerId)) peers.set(peerId, found);
  }
  const last = record.lastPeerId ? peers.get(record.lastPeerId) : undefined;
  const job = await db.inferenceJob.create({
    data: {
      roomId: room?.id ?? null,
      requesterId: userId,
      serverId: last?.userId ?? null,
      route: 'MESH',
      modelId: record.modelId,
      outcome: record.outcome,
      tokensIn: record.tokensIn,
      tokensOut: record.tokensOut,
      ttftMs: record.ttftMs === null ? null : Math.round(record.ttftMs),
      tokensPerSecond: record.tokensPerSecond,
      failoverCount: record.failoverCount,
      errorCode: record.errorCode?.slice(0, 64) ?? null,
      createdAt: record.startedAt,
      finishedAt: new Date(),
      peers: {
        create: [...peers].map(([peerId, peer]) => ({
          peerId,
          userId: peer.userId,
          displayName: peer.displayName,
          role: STAGE_ROLE,
        })),
      },
    },
    select: { id: true },
  });
  return job;
}
