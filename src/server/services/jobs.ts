// InferenceJob records for mesh answers: started and finished by the requester, with the serving peers named by
// peer id and resolved here to the users behind them (only peers in the same room count), spot-check verdicts
// and mismatches, and per-room stats.
import { TRPCError } from '@trpc/server';
import type { z } from 'zod';
import { JOB_LIMITS, type JobCheckSchema, type JobFinishSchema, type JobStartSchema } from '../../shared/schemas/jobs.ts';
import type { PrismaClient } from '../db/client.ts';
import { GLOBAL_ROOM, isMember, roomBySlug } from './room.ts';

/** Who is behind a peer id in a room right now (from the signaling layer); null when no such peer is there. */
export type PeerLookup = (room: string, peerId: string) => Promise<{ userId: string; displayName: string; sharing: boolean } | null>;

/** Past any job's deadline (15 minutes at most): a job still RUNNING this long was abandoned (its tab closed). */
const ABANDONED_AFTER_MS = 20 * 60_000;

/** The room, if this user may use it: everyone the global room, members (or anyone, if public) the others. */
async function usableRoom(db: PrismaClient, userId: string, slug: string) {
  const room = await roomBySlug(db, slug);
  if (!room || (slug !== GLOBAL_ROOM && room.visibility === 'PRIVATE' && !(await isMember(db, room.id, userId)))) {
    throw new TRPCError({ code: 'NOT_FOUND', message: `No room ${slug} among those you can use` });
  }
  return room;
}

export async function startJob(db: PrismaClient, peers: PeerLookup, userId: string, input: z.infer<typeof JobStartSchema>) {
  const room = await usableRoom(db, userId, input.room);
  const server = await peers(input.room, input.serverPeerId);
  if (!server) throw new TRPCError({ code: 'NOT_FOUND', message: `No peer ${input.serverPeerId} in room ${input.room}` });
  if (!server.sharing) throw new TRPCError({ code: 'BAD_REQUEST', message: `${server.displayName} does not share its compute in room ${input.room}` });
  await db.inferenceJob.updateMany({
    where: { requesterId: userId, outcome: 'RUNNING', createdAt: { lt: new Date(Date.now() - ABANDONED_AFTER_MS) } },
    data: { outcome: 'FAILED', errorCode: 'ABANDONED', finishedAt: new Date() },
  });
  const running = await db.inferenceJob.count({ where: { requesterId: userId, outcome: 'RUNNING' } });
  if (running >= JOB_LIMITS.runningPerUser) {
    throw new TRPCError({ code: 'TOO_MANY_REQUESTS', message: `At most ${JOB_LIMITS.runningPerUser} mesh jobs running at once: finish some first` });
  }
  return db.inferenceJob.create({
    data: { roomId: room.id, requesterId: userId, serverId: server.userId, route: 'MESH', modelId: input.model.id, modelSha256: input.model.sha256 },
    select: { id: true },
  });
}

async function ownRunningJob(db: PrismaClient, userId: string, id: string) {
  const job = await db.inferenceJob.findUnique({ where: { id }, select: { requesterId: true, outcome: true, room: { select: { slug: true } } } });
  if (!job || job.requesterId !== userId) throw new TRPCError({ code: 'NOT_FOUND', message: `No job ${id} of yours` });
  return job;
}

export async function finishJob(db: PrismaClient, peers: PeerLookup, userId: string, input: z.infer<typeof JobFinishSchema>) {
  const job = await ownRunningJob(db, userId, input.id);
  if (job.outcome !== 'RUNNING') throw new TRPCError({ code: 'CONFLICT', message: `Job ${input.id} is already ${job.outcome.toLowerCase()}` });
  // The last serving peer, if it is still in the room to be named (after a failover it is another user).
  const last = input.serverPeerId && job.room ? await peers(job.room.slug, input.serverPeerId) : null;
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
 * A spot check's verdict on a finished job, once: mismatches name peers in the room (never the requester's own
 * user), so one person cannot pile up records against another beyond one per job they really had served.
 */
export async function recordCheck(db: PrismaClient, peers: PeerLookup, userId: string, input: z.infer<typeof JobCheckSchema>) {
  const job = await db.inferenceJob.findUnique({ where: { id: input.id }, select: { requesterId: true, roomId: true, outcome: true, checkResult: true, room: { select: { slug: true } } } });
  if (!job || job.requesterId !== userId) throw new TRPCError({ code: 'NOT_FOUND', message: `No job ${input.id} of yours` });
  if (job.outcome !== 'COMPLETED') throw new TRPCError({ code: 'CONFLICT', message: `Job ${input.id} is ${job.outcome.toLowerCase()}, not completed: nothing to check` });
  if (job.checkResult) throw new TRPCError({ code: 'CONFLICT', message: `Job ${input.id} was checked already` });
  const culprits = await Promise.all(input.excludedPeerIds.map(async (peerId) => (job.room ? await peers(job.room.slug, peerId) : null)));
  if (culprits.some((culprit) => culprit?.userId === userId)) throw new TRPCError({ code: 'BAD_REQUEST', message: 'A spot check cannot name your own peers' });
  await db.$transaction([
    db.inferenceJob.update({ where: { id: input.id }, data: { checkResult: input.result } }),
    ...culprits.map((culprit) =>
      db.peerMismatch.create({
        data: { roomId: job.roomId, jobId: input.id, reporterId: userId, peerUserId: culprit?.userId ?? null, peerName: culprit?.displayName ?? 'a peer that left' },
      }),
    ),
  ]);
  return { id: input.id, mismatches: culprits.length };
}

/** This user's jobs, asked or served, newest first. */
export function listJobs(db: PrismaClient, userId: string) {
  return db.inferenceJob.findMany({
    where: { OR: [{ requesterId: userId }, { serverId: userId }] },
    orderBy: { createdAt: 'desc' },
    take: JOB_LIMITS.list,
    select: {
      id: true,
      route: true,
      modelId: true,
      backend: true,
      tokensIn: true,
      tokensOut: true,
      ttftMs: true,
      tokensPerSecond: true,
      outcome: true,
      failoverCount: true,
      checkResult: true,
      createdAt: true,
      finishedAt: true,
      requesterId: true,
      room: { select: { slug: true } },
      server: { select: { displayName: true } },
    },
  });
}

export async function roomStats(db: PrismaClient, userId: string, slug: string) {
  const room = await usableRoom(db, userId, slug);
  const where = { roomId: room.id };
  const [byOutcome, totals, servers, mismatches] = await Promise.all([
    db.inferenceJob.groupBy({ by: ['outcome'], where, _count: { _all: true } }),
    db.inferenceJob.aggregate({ where: { ...where, outcome: 'COMPLETED' }, _sum: { tokensOut: true, failoverCount: true }, _avg: { tokensPerSecond: true } }),
    db.inferenceJob.groupBy({ by: ['serverId'], where: { ...where, outcome: 'COMPLETED' }, _count: { _all: true }, _sum: { tokensOut: true }, orderBy: { _count: { serverId: 'desc' } }, take: 10 }),
    db.peerMismatch.count({ where }),
  ]);
  const names = await db.user.findMany({ where: { id: { in: servers.flatMap((s) => (s.serverId ? [s.serverId] : [])) } }, select: { id: true, displayName: true } });
  return {
    room: slug,
    jobs: Object.fromEntries(byOutcome.map((row) => [row.outcome, row._count._all])),
    tokensOut: totals._sum.tokensOut ?? 0,
    failovers: totals._sum.failoverCount ?? 0,
    averageTokensPerSecond: totals._avg.tokensPerSecond,
    mismatches,
    servers: servers.map((row) => ({ name: names.find((n) => n.id === row.serverId)?.displayName ?? 'gone', jobs: row._count._all, tokensOut: row._sum.tokensOut ?? 0 })),
  };
}
