// InferenceJob records of pipeline jobs the server asks for /v1 (docs/pipeline.md, "Asking from /v1"): one model's
// layers run by a chain of stage peers. The record has the shape jobs.start gives a pipeline job (services/jobs.ts,
// docs/pipeline.md "Records and spot checks"): `stages` (how many), and every stage's peer as a SERVER with its
// layers (each looked up in the room's presence as the job went to it, and each replacement after a failover as it
// took over); its server is the last stage's (the one that sampled the answer's tokens), its model sha256 the
// stages' model version (docs/pipeline.md#stage-fingerprints). Written once, when the job is over: the embedded
// database runs its queries on the server's own thread, so nothing is written while tokens stream (as for
// whole-model jobs, src/server/openai/mesh-chat.ts).
import type { PrismaClient } from '../db/client.ts';
import type { PeerLookup } from './jobs.ts';
import { roomBySlug } from './room.ts';

/** A stage's peer, as the room's presence knew it when the job went to it (null: not there, or not sharing). */
export type StagePeer = Awaited<ReturnType<PeerLookup>>;

export interface PipelineJobRecord {
  room: string;
  modelId: string;
  /** The stages' model version (their advertised `version`), when the chain said one. */
  modelSha256: string | null;
  /** How many stages the chain had. */
  stages: number;
  /** When the job went to its stages. */
  startedAt: Date;
  /** Each stage's peer in layer order with its layers, then each replacement after a failover, by peer id. */
  peers: { peerId: string; layers: readonly [number, number]; peer: Promise<StagePeer> }[];
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
  const peers = new Map<string, NonNullable<StagePeer> & { layers: readonly [number, number] }>();
  for (const { peerId, layers, peer } of record.peers) {
    const found = await peer.catch(() => null);
    // A peer recorded only when it was in the room and sharing as it took its stage.
    if (found?.sharing && !peers.has(peerId)) peers.set(peerId, { ...found, layers });
  }
  const last = record.lastPeerId ? peers.get(record.lastPeerId) : undefined;
  const job = await db.inferenceJob.create({
    data: {
      roomId: room?.id ?? null,
      requesterId: userId,
      serverId: last?.userId ?? null,
      route: 'MESH',
      modelId: record.modelId,
      modelSha256: record.modelSha256,
      stages: record.stages,
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
          role: 'SERVER',
          layerFrom: peer.layers[0],
          layerTo: peer.layers[1],
        })),
      },
    },
    select: { id: true },
  });
  return job;
}
