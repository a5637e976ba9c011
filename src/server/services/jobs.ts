// InferenceJob records for mesh answers: started and finished by the requester, spot-check verdicts and
// mismatches, and per-room stats. Each peer that takes a job (its first server, each server after a failover,
// each checker; a pipeline job's every stage, with its layers) is named by the requester as it takes it, checked here to be in the job's room and sharing, and
// recorded with the user behind it (InferenceJobPeer); finish and check may name only those recorded peers, so a
// requester cannot pin a job or a mismatch on someone who never took part in it.
// Reading the records (a user's list, a room's stats) is job-views.ts.
import type { z } from 'zod';
import {
  JOB_LIMITS,
  type JobAttemptSchema,
  type JobCheckSchema,
  type JobFinishSchema,
  type JobStartSchema,
} from '../../shared/schemas/jobs.ts';
import type { PrismaClient } from '../db/client.ts';
import { Prisma } from '../db/generated/client.ts';
import { GLOBAL_ROOM, isMember, roomBySlug } from './room.ts';
import { ServiceError } from './errors.ts';

/** Who is behind a peer id in a room right now (from the signaling layer); null when no such peer is there. */
export type PeerLookup = (
  room: string,
  peerId: string,
) => Promise<{ userId: string; displayName: string; sharing: boolean } | null>;

/** Past any job's deadline (15 minutes at most): a job still RUNNING this long was abandoned (its tab closed). */
export const ABANDONED_AFTER_MS = 20 * 60_000;

/** The room, if this user may use it: everyone the global room, members (or anyone, if public) the others. */
export async function usableRoom(db: PrismaClient, userId: string, slug: string) {
  const room = await roomBySlug(db, slug);
  if (!room || (slug !== GLOBAL_ROOM && room.visibility === 'PRIVATE' && !(await isMember(db, room.id, userId)))) {
    throw new ServiceError('NOT_FOUND', `No room ${slug} among those you can use`);
  }
  return room;
}

/** The peer behind `peerId` if it can take a job in the room now: there, and sharing its compute. */
async function takingPeer(peers: PeerLookup, slug: string, peerId: string) {
  const peer = await peers(slug, peerId);
  if (!peer) throw new ServiceError('NOT_FOUND', `No peer ${peerId} in room ${slug}`);
  if (!peer.sharing)
    throw new ServiceError('INVALID', `${peer.displayName} does not share its compute in room ${slug}`);
  return peer;
}

/** A time as the DateTime columns hold it (UTC, as Prisma writes them), for raw SQL. */
const utc = (at: Date) => Prisma.sql`(${at.toISOString()}::timestamptz AT TIME ZONE 'UTC')`;

/**
 * Starts a job's record, naming its first server. `startedAt` is when that peer took it, for a record written later
 * (src/server/openai/mesh-chat.ts writes it once the answer is out).
 *
 * One statement: it runs on every mesh job, and the embedded database runs its queries on the server's own thread
 * (bench/README.md, issue 14). It checks the room (global, public, or one the user belongs to) and the user's running
 * jobs, and inserts the job and its server (a pipeline job's every stage peer, with its layers) only when both allow
 * it. Jobs running past any deadline were abandoned and do not count; listJobs and roomStats mark them (job-views.ts).
 */
export async function startJob(
  db: PrismaClient,
  peers: PeerLookup,
  userId: string,
  input: z.infer<typeof JobStartSchema>,
  startedAt = new Date(),
) {
  const peer = await peers(input.room, input.serverPeerId);
  // A room the user cannot use is refused as such first, whatever is in it.
  if (!peer?.sharing) await usableRoom(db, userId, input.room);
  const server = await takingPeer(async () => peer, input.room, input.serverPeerId);
  // A pipeline job names every stage's peer (the last one is the server, looked up above): each in the room, sharing.
  const stages: { peerId: string; userId: string; displayName: string; layers: readonly number[] | null }[] =
    input.stages
      ? await Promise.all(
          input.stages.map(async (stage) => ({
            ...stage,
            ...(stage.peerId === input.serverPeerId ? server : await takingPeer(peers, input.room, stage.peerId)),
          })),
        )
      : [{ peerId: input.serverPeerId, ...server, layers: null }];
  const rows = Prisma.join(
    stages.map(
      (stage) =>
        Prisma.sql`(${stage.peerId}, ${stage.userId}::uuid, ${stage.displayName}, ${stage.layers?.[0] ?? null}::int, ${stage.layers?.[1] ?? null}::int)`,
    ),
  );
  const now = new Date();
  const [row] = await db.$queryRaw<{ room: string | null; id: string | null }[]>`
    WITH room AS (
      SELECT r.id FROM "Room" r
      WHERE r.slug = ${input.room}
        AND (r.slug = ${GLOBAL_ROOM} OR r.visibility <> 'PRIVATE'
          OR EXISTS (SELECT 1 FROM "RoomMember" m WHERE m."roomId" = r.id AND m."userId" = ${userId}::uuid))
    ), running AS (
      SELECT count(*) AS n FROM "InferenceJob"
      WHERE "requesterId" = ${userId}::uuid AND outcome = 'RUNNING'
        AND "createdAt" >= ${utc(new Date(now.getTime() - ABANDONED_AFTER_MS))}
    ), job AS (
      INSERT INTO "InferenceJob" (id, "roomId", "requesterId", "serverId", route, "modelId", "modelSha256", stages, "createdAt", "updatedAt")
      SELECT gen_random_uuid(), room.id, ${userId}::uuid, ${server.userId}::uuid, 'MESH'::"JobRoute", ${input.model.id},
        ${input.model.sha256}, ${input.stages?.length ?? null}::int, ${utc(startedAt)}, ${utc(now)}
      FROM room, running WHERE running.n < ${JOB_LIMITS.runningPerUser}
      RETURNING id
    ), peer AS (
      INSERT INTO "InferenceJobPeer" ("jobId", "peerId", "userId", "displayName", role, "layerFrom", "layerTo", "createdAt")
      SELECT job.id, stage.peer, stage.uid, stage.name, 'SERVER', stage.lfrom, stage.lto, ${utc(now)}
      FROM job, (VALUES ${rows}) AS stage(peer, uid, name, lfrom, lto)
    )
    SELECT (SELECT id::text FROM room) AS room, (SELECT id::text FROM job) AS id`;
  if (!row?.room) throw new ServiceError('NOT_FOUND', `No room ${input.room} among those you can use`);
  if (!row.id) {
    throw new ServiceError(
      'TOO_MANY',
      `At most ${JOB_LIMITS.runningPerUser} mesh jobs running at once: finish some first`,
    );
  }
  return { id: row.id };
}

/**
 * Records that `peerId` took the job: the next server after a failover (while it runs), or a checker (until its
 * check is reported). Naming a peer again in the same role changes nothing.
 */
export async function recordAttempt(
  db: PrismaClient,
  peers: PeerLookup,
  userId: string,
  input: z.infer<typeof JobAttemptSchema>,
) {
  const job = await db.inferenceJob.findUnique({
    where: { id: input.id },
    select: {
      requesterId: true,
      outcome: true,
      checkResult: true,
      stages: true,
      room: { select: { slug: true } },
      peers: { select: { peerId: true, role: true } },
    },
  });
  if (!job || job.requesterId !== userId) throw new ServiceError('NOT_FOUND', `No job ${input.id} of yours`);
  if (input.role === 'SERVER' && (job.stages === null) !== !input.layers) {
    throw new ServiceError(
      'INVALID',
      job.stages === null
        ? `Job ${input.id} ran on the whole model: a server takes no layers`
        : `Job ${input.id} is a pipeline job: name the layers of the stage the peer takes over`,
    );
  }
  if (input.role === 'SERVER' && job.outcome !== 'RUNNING') {
    throw new ServiceError(
      'CONFLICT',
      `Job ${input.id} is already ${job.outcome.toLowerCase()}: it takes no more servers`,
    );
  }
  if (input.role === 'CHECKER' && (job.checkResult || (job.outcome !== 'RUNNING' && job.outcome !== 'COMPLETED'))) {
    throw new ServiceError(
      'CONFLICT',
      `Job ${input.id} ${job.checkResult ? 'was checked already' : `is ${job.outcome.toLowerCase()}: nothing to check`}`,
    );
  }
  const known = job.peers.find((peer) => peer.peerId === input.peerId);
  if (known) {
    if (known.role !== input.role)
      throw new ServiceError(
        'CONFLICT',
        `Peer ${input.peerId} took job ${input.id} as its ${known.role.toLowerCase()} already`,
      );
    return { id: input.id, peerId: input.peerId, role: input.role };
  }
  const cap = input.role === 'SERVER' ? JOB_LIMITS.failovers + (job.stages ?? 1) : JOB_LIMITS.checkersPerJob;
  if (job.peers.filter((peer) => peer.role === input.role).length >= cap) {
    throw new ServiceError('INVALID', `At most ${cap} ${input.role === 'SERVER' ? 'servers' : 'checkers'} for one job`);
  }
  if (!job.room) throw new ServiceError('CONFLICT', `Job ${input.id}'s room is gone`);
  const peer = await takingPeer(peers, job.room.slug, input.peerId);
  // Two reports of the same peer at once: the second finds the row there, which is what it wanted.
  await db.inferenceJobPeer.createMany({
    data: [
      {
        jobId: input.id,
        peerId: input.peerId,
        userId: peer.userId,
        displayName: peer.displayName,
        role: input.role,
        ...(input.layers ? { layerFrom: input.layers[0], layerTo: input.layers[1] } : {}),
      },
    ],
    skipDuplicates: true,
  });
  return { id: input.id, peerId: input.peerId, role: input.role, ...(input.layers ? { layers: input.layers } : {}) };
}

async function ownRunningJob(db: PrismaClient, userId: string, id: string) {
  const job = await db.inferenceJob.findUnique({ where: { id }, select: { requesterId: true, outcome: true } });
  if (!job || job.requesterId !== userId) throw new ServiceError('NOT_FOUND', `No job ${id} of yours`);
  return job;
}

export async function finishJob(db: PrismaClient, userId: string, input: z.infer<typeof JobFinishSchema>) {
  const job = await ownRunningJob(db, userId, input.id);
  if (job.outcome !== 'RUNNING')
    throw new ServiceError('CONFLICT', `Job ${input.id} is already ${job.outcome.toLowerCase()}`);
  // The last serving peer (after a failover, another user): one recorded as this job's server, even if it left since.
  const last = input.serverPeerId
    ? await db.inferenceJobPeer.findUnique({
        where: { jobId_peerId: { jobId: input.id, peerId: input.serverPeerId } },
        select: { userId: true, role: true },
      })
    : null;
  if (input.serverPeerId && last?.role !== 'SERVER') {
    throw new ServiceError(
      'INVALID',
      `Peer ${input.serverPeerId} was not recorded serving job ${input.id} (jobs.start or jobs.attempt names it)`,
    );
  }
  await db.inferenceJob.update({
    where: { id: input.id },
    data: {
      outcome: input.outcome,
      ...(last ? { serverId: last.userId } : {}),
      backend: input.backend ?? null,
      tokensIn: input.tokensIn,
      tokensOut: input.tokensOut,
      ttftMs: input.ttftMs === undefined ? null : Math.round(input.ttftMs),
      tokensPerSecond: input.tokensPerSecond ?? null,
      failoverCount: input.failoverCount,
      errorCode: input.errorCode ?? null,
      finishedAt: new Date(),
    },
  });
  return { id: input.id };
}

/**
 * A spot check's verdict on a finished job, once. Mismatches name only peers recorded taking this job (never the
 * requester's own user), so one person cannot pile up records against another beyond one per job that other
 * really took. A verdict other than UNRESOLVED, or naming anyone, needs a recorded checker: without one, nobody
 * re-ran the job.
 */
export async function recordCheck(db: PrismaClient, userId: string, input: z.infer<typeof JobCheckSchema>) {
  const job = await db.inferenceJob.findUnique({
    where: { id: input.id },
    select: {
      requesterId: true,
      roomId: true,
      outcome: true,
      checkResult: true,
      peers: { select: { peerId: true, userId: true, displayName: true, role: true } },
    },
  });
  if (!job || job.requesterId !== userId) throw new ServiceError('NOT_FOUND', `No job ${input.id} of yours`);
  if (job.outcome !== 'COMPLETED')
    throw new ServiceError(
      'CONFLICT',
      `Job ${input.id} is ${job.outcome.toLowerCase()}, not completed: nothing to check`,
    );
  if (job.checkResult) throw new ServiceError('CONFLICT', `Job ${input.id} was checked already`);
  if (
    (input.result !== 'UNRESOLVED' || input.excludedPeerIds.length) &&
    !job.peers.some((peer) => peer.role === 'CHECKER')
  ) {
    throw new ServiceError(
      'INVALID',
      `No checker was recorded for job ${input.id}: its check can only be UNRESOLVED, naming nobody`,
    );
  }
  const culprits = input.excludedPeerIds.map((peerId) => {
    const culprit = job.peers.find((peer) => peer.peerId === peerId);
    if (!culprit) throw new ServiceError('INVALID', `Peer ${peerId} was not recorded taking job ${input.id}`);
    return culprit;
  });
  if (culprits.some((culprit) => culprit.userId === userId))
    throw new ServiceError('INVALID', 'A spot check cannot name your own peers');
  await db.$transaction(async (tx) => {
    // Only the first of two reports sent at once gets to record its mismatches.
    const { count } = await tx.inferenceJob.updateMany({
      where: { id: input.id, checkResult: null },
      data: { checkResult: input.result },
    });
    if (count !== 1) throw new ServiceError('CONFLICT', `Job ${input.id} was checked already`);
    await tx.peerMismatch.createMany({
      data: culprits.map((culprit) => ({
        roomId: job.roomId,
        jobId: input.id,
        reporterId: userId,
        peerUserId: culprit.userId,
        peerName: culprit.displayName,
      })),
    });
  });
  return { id: input.id, mismatches: culprits.length };
}
