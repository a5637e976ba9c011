// Reading mesh job records: a user's list and a room's stats (jobs.ts writes them). Jobs a requester abandoned
// (still RUNNING past any deadline: its tab closed) are marked so before they are shown, here rather than on each
// job's start, which runs beside a streaming answer (jobs.ts).
import { JOB_LIMITS } from '../../shared/schemas/jobs.ts';
import type { PrismaClient } from '../db/client.ts';
import type { Prisma } from '../db/generated/client.ts';
import { ABANDONED_AFTER_MS, usableRoom } from './jobs.ts';

/** Marks the jobs among `where` left RUNNING past any deadline as FAILED, ABANDONED. */
async function markAbandoned(db: PrismaClient, where: Prisma.InferenceJobWhereInput) {
  await db.inferenceJob.updateMany({
    where: { ...where, outcome: 'RUNNING', createdAt: { lt: new Date(Date.now() - ABANDONED_AFTER_MS) } },
    data: { outcome: 'FAILED', errorCode: 'ABANDONED', finishedAt: new Date() },
  });
}

/** This user's jobs, asked or served, newest first. */
export async function listJobs(db: PrismaClient, userId: string) {
  const where = { OR: [{ requesterId: userId }, { serverId: userId }] };
  await markAbandoned(db, where);
  return db.inferenceJob.findMany({
    where,
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
      stages: true,
      // A pipeline job's stages: who ran which layers (a stage taken over after a failover lists both peers).
      peers: {
        where: { role: 'SERVER', layerFrom: { not: null } },
        orderBy: [{ layerFrom: 'asc' }, { createdAt: 'asc' }],
        select: { displayName: true, layerFrom: true, layerTo: true },
      },
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
  await markAbandoned(db, where);
  const [byOutcome, totals, servers, mismatches] = await Promise.all([
    db.inferenceJob.groupBy({ by: ['outcome'], where, _count: { _all: true } }),
    db.inferenceJob.aggregate({
      where: { ...where, outcome: 'COMPLETED' },
      _sum: { tokensOut: true, failoverCount: true },
      _avg: { tokensPerSecond: true },
    }),
    db.inferenceJob.groupBy({
      by: ['serverId'],
      where: { ...where, outcome: 'COMPLETED' },
      _count: { _all: true },
      _sum: { tokensOut: true },
      orderBy: { _count: { serverId: 'desc' } },
      take: 10,
    }),
    db.peerMismatch.count({ where }),
  ]);
  const names = await db.user.findMany({
    where: { id: { in: servers.flatMap((s) => (s.serverId ? [s.serverId] : [])) } },
    select: { id: true, displayName: true },
  });
  return {
    room: slug,
    jobs: Object.fromEntries(byOutcome.map((row) => [row.outcome, row._count._all])),
    tokensOut: totals._sum.tokensOut ?? 0,
    failovers: totals._sum.failoverCount ?? 0,
    averageTokensPerSecond: totals._avg.tokensPerSecond,
    mismatches,
    servers: servers.map((row) => ({
      name: names.find((n) => n.id === row.serverId)?.displayName ?? 'gone',
      jobs: row._count._all,
      tokensOut: row._sum.tokensOut ?? 0,
    })),
  };
}
