// Housekeeping: expired sessions and guests idle for GUEST_RETENTION_DAYS are purged with what they own, in
// batches; accounts, their live sessions and active guests stay; the timer runs it soon after start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import type { PrismaClient } from '../src/server/db/client.ts';
import { purgeStale } from '../src/server/services/retention.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

const DAY = 86_400_000;
let db: TestDatabase;
let prisma: PrismaClient;

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  prisma = db.database.prisma;
});
afterAll(async () => {
  await db?.cleanup();
});

let counter = 0;

/** A session last used `usedAgo` ms before `now`, expiring as the default policy (14 idle days, 90 in all) says. */
async function session(userId: string, now: number, usedAgo: number, createdAgo = usedAgo) {
  const id = `s${String(++counter).padStart(19, '0')}`;
  await prisma.session.create({
    data: {
      id,
      secretHash: '0'.repeat(64),
      userId,
      lastActiveAt: new Date(now - usedAgo),
      idleExpiresAt: new Date(now - usedAgo + 14 * DAY),
      expiresAt: new Date(now - createdAgo + 90 * DAY),
      createdAt: new Date(now - createdAgo),
    },
  });
  return id;
}

async function user(kind: 'GUEST' | 'ACCOUNT', now: number, age: number) {
  const at = new Date(now - age);
  const username = kind === 'ACCOUNT' ? `keep-${++counter}` : null;
  return prisma.user.create({
    data: { kind, username, displayName: `User ${++counter}`, createdAt: at, updatedAt: at },
    select: { id: true },
  });
}

/** What a guest can own: a membership, a job it asked for (with its peers), a report, a conversation. */
async function holdings(userId: string, servedBy: string) {
  const global = await prisma.room.findUniqueOrThrow({ where: { slug: 'global' }, select: { id: true } });
  await prisma.roomMember.create({ data: { roomId: global.id, userId } });
  const job = await prisma.inferenceJob.create({
    data: { requesterId: userId, serverId: servedBy, roomId: global.id, route: 'MESH', modelId: 'nano' },
  });
  await prisma.inferenceJobPeer.create({
    data: { jobId: job.id, peerId: `peer-${++counter}`, userId: servedBy, displayName: 'Server', role: 'SERVER' },
  });
  await prisma.peerMismatch.create({
    data: { reporterId: userId, peerUserId: servedBy, roomId: global.id, jobId: job.id, peerName: 'Server' },
  });
  await prisma.conversation.create({
    data: { userId, title: 'kept on the device, normally', messages: { create: { role: 'USER', content: 'hi' } } },
  });
  return job.id;
}

describe('purgeStale', () => {
  it('deletes expired account sessions and idle guests with what they own, in batches, and keeps the rest', async () => {
    const now = Date.parse('2033-01-01T00:00:00Z');
    const account = await user('ACCOUNT', now, 400 * DAY);
    const liveSession = await session(account.id, now, 1 * DAY);
    const idleExpired = await session(account.id, now, 20 * DAY);
    const capExpired = await session(account.id, now, 1 * DAY, 100 * DAY);

    const idleGuests = [];
    for (let i = 0; i < 7; i++) {
      const guest = await user('GUEST', now, 60 * DAY);
      await session(guest.id, now, 31 * DAY);
      idleGuests.push(guest.id);
    }
    // Gone with its sessions long ago (logout), and created before the retention window.
    const sessionless = await user('GUEST', now, 45 * DAY);
    const owner = idleGuests[0] ?? '';
    // A job the idle guest asked for, served by the account: the guest's records go, the account's stay.
    const ownedJob = await holdings(owner, account.id);
    // A job the idle guest served for the account: it stays, without its server.
    const servedJob = await prisma.inferenceJob.create({
      data: { requesterId: account.id, serverId: owner, route: 'MESH', modelId: 'nano' },
    });

    const active = await user('GUEST', now, 60 * DAY);
    const activeOld = await session(active.id, now, 40 * DAY);
    await session(active.id, now, 2 * DAY);
    const fresh = await user('GUEST', now, 1 * DAY);

    const purged = await purgeStale(prisma, { guestRetentionDays: 30, batchSize: 3 }, new Date(now));
    expect(purged).toEqual({ sessions: 2, guests: 8 });

    expect(await prisma.user.count({ where: { id: { in: [...idleGuests, sessionless.id] } } })).toBe(0);
    expect(await prisma.session.count({ where: { userId: { in: idleGuests } } })).toBe(0);
    expect(await prisma.roomMember.count({ where: { userId: owner } })).toBe(0);
    expect(await prisma.inferenceJob.count({ where: { id: ownedJob } })).toBe(0);
    expect(await prisma.peerMismatch.count({ where: { reporterId: owner } })).toBe(0);
    expect(await prisma.conversation.count({ where: { userId: owner } })).toBe(0);
    expect(await prisma.message.count({ where: { content: 'hi' } })).toBe(0);
    expect(await prisma.inferenceJob.findUnique({ where: { id: servedJob.id }, select: { serverId: true } })).toEqual({
      serverId: null,
    });

    const sessionsLeft = (await prisma.session.findMany({ select: { id: true } })).map((row) => row.id);
    expect(sessionsLeft).toContain(liveSession);
    expect(sessionsLeft).not.toContain(idleExpired);
    expect(sessionsLeft).not.toContain(capExpired);
    // An active guest keeps even its expired sessions: they go with the guest.
    expect(sessionsLeft).toContain(activeOld);
    expect(await prisma.user.count({ where: { id: { in: [account.id, active.id, fresh.id] } } })).toBe(3);

    // Nothing left to do: a second run deletes nothing.
    expect(await purgeStale(prisma, { guestRetentionDays: 30, batchSize: 3 }, new Date(now))).toEqual({
      sessions: 0,
      guests: 0,
    });
  });

  it('never purges an account, however long dormant: only its expired sessions go', async () => {
    const now = Date.parse('2033-02-01T00:00:00Z');
    const dormant = await user('ACCOUNT', now, 500 * DAY);
    await session(dormant.id, now, 200 * DAY);
    await purgeStale(prisma, { guestRetentionDays: 30 }, new Date(now));
    expect(await prisma.user.count({ where: { id: dormant.id } })).toBe(1);
    expect(await prisma.session.count({ where: { userId: dormant.id } })).toBe(0);
  });
});

describe('the housekeeping timer', () => {
  it('purges soon after start, every HOUSEKEEPING_INTERVAL_MS, and stops with the app', async () => {
    const app = await buildApp({
      env: testEnv({ HOUSEKEEPING_INTERVAL_MS: '1000', GUEST_RETENTION_DAYS: '30' }),
      database: db.database,
    });
    try {
      await app.ready();
      const idle = await user('GUEST', Date.now(), 40 * DAY);
      await expect
        .poll(() => prisma.user.count({ where: { id: idle.id } }), { timeout: 10_000, interval: 200 })
        .toBe(0);
      // And again on the next tick, not only once.
      const later = await user('GUEST', Date.now(), 40 * DAY);
      await expect
        .poll(() => prisma.user.count({ where: { id: later.id } }), { timeout: 10_000, interval: 200 })
        .toBe(0);
    } finally {
      await app.close();
    }
    const after = await user('GUEST', Date.now(), 40 * DAY);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await prisma.user.count({ where: { id: after.id } })).toBe(1);
  });
});
