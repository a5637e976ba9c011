// Mesh job records over real HTTP and Socket.IO: a requester starts a job naming a serving peer by its peer id,
// and the server resolves it to the user behind it only when that peer is in the room; each further peer that
// takes the job (a failover's server, a checker) is recorded the same way, and finish and check may name only
// recorded peers, each once; finishing records the numbers and the last server after a failover; a spot-check
// mismatch is recorded against the peer's user; only the requester may finish or report; job records are
// rate-limited per user; jobs.list and room stats reflect it all.
import { TRPCClientError } from '@trpc/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import type { Ack, PeerInfo } from '../src/shared/socket-contract.ts';
import { chatClient } from './support/chat-client.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { type MeshClient, connectMesh, nextEvent } from './support/mesh-socket.ts';
import { guestCookie } from './support/server-process.ts';
import { accountCookie } from './support/accounts.ts';

type Client = MeshClient;

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
const sockets: Client[] = [];
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  app = await buildApp({ env: testEnv(), database: db.database });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  for (const other of apps) await other.close();
  await app?.close();
  await db?.cleanup();
});

/** A guest with an API client and a socket in the global room (sharing its compute unless told not to). */
async function member(name: string, sharing = true, server = base) {
  const cookie = await guestCookie(server, name);
  const socket = await connectMesh(server, sockets, { cookie });
  const capabilities = { backend: 'wasm' as const, models: [], tokensPerSecond: null, sharing, queue: 0 };
  const joined = (await socket.emitWithAck('room:join', { room: 'global', capabilities })) as Ack<{ self: PeerInfo }>;
  if (!joined.ok) throw new Error(joined.message);
  return { api: chatClient(server, cookie), peerId: joined.data.self.peerId, userId: joined.data.self.userId, socket };
}

const codeOf = (error: unknown) =>
  error instanceof TRPCClientError ? (error.data as { code?: string } | undefined)?.code : String(error);
const model = { id: 'nano-shakespeare', sha256: 'a'.repeat(64) };

describe('mesh job records', () => {
  it('records a job with the serving peers resolved to their users, its failover, and a spot-check mismatch', async () => {
    const bob = await member('Bob');
    const ada = await member('Ada');
    const cy = await member('Cy');
    const dee = await member('Dee');

    // A peer that is not in the room cannot be named.
    const stranger = '00000000-0000-4000-8000-000000000000';
    expect(
      codeOf(
        await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: stranger, model }).catch((e: unknown) => e),
      ),
    ).toBe('NOT_FOUND');

    const { id } = await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model });
    // Ada leaves mid-answer and Cy takes over: the server records Cy as the job's next server.
    expect(await bob.api.jobs.attempt.mutate({ id, peerId: cy.peerId, role: 'SERVER' })).toEqual({
      id,
      peerId: cy.peerId,
      role: 'SERVER',
    });
    // Only the requester finishes it.
    const finish = {
      id,
      outcome: 'COMPLETED' as const,
      serverPeerId: cy.peerId,
      backend: 'wasm' as const,
      tokensIn: 12,
      tokensOut: 40,
      ttftMs: 25.4,
      tokensPerSecond: 88.5,
      failoverCount: 1,
    };
    expect(codeOf(await ada.api.jobs.finish.mutate(finish).catch((e: unknown) => e))).toBe('NOT_FOUND');
    await bob.api.jobs.finish.mutate(finish);
    expect(codeOf(await bob.api.jobs.finish.mutate(finish).catch((e: unknown) => e))).toBe('CONFLICT');

    const row = await db.database.prisma.inferenceJob.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({
      requesterId: bob.userId,
      serverId: cy.userId,
      route: 'MESH',
      outcome: 'COMPLETED',
      tokensOut: 40,
      ttftMs: 25,
      failoverCount: 1,
      backend: 'wasm',
    });
    expect(row.finishedAt).not.toBeNull();

    // A spot check that caught Cy (Dee re-ran the job): recorded against Cy's user.
    await bob.api.jobs.attempt.mutate({ id, peerId: dee.peerId, role: 'CHECKER' });
    expect(
      codeOf(
        await bob.api.jobs.check
          .mutate({ id, result: 'MISMATCH', excludedPeerIds: [bob.peerId] })
          .catch((e: unknown) => e),
      ),
    ).toBe('BAD_REQUEST');
    expect(await bob.api.jobs.check.mutate({ id, result: 'MISMATCH', excludedPeerIds: [cy.peerId] })).toEqual({
      id,
      mismatches: 1,
    });
    expect(
      codeOf(await ada.api.jobs.check.mutate({ id, result: 'MATCH', excludedPeerIds: [] }).catch((e: unknown) => e)),
    ).toBe('NOT_FOUND');
    // Once per job.
    expect(
      codeOf(
        await bob.api.jobs.check
          .mutate({ id, result: 'MISMATCH', excludedPeerIds: [cy.peerId] })
          .catch((e: unknown) => e),
      ),
    ).toBe('CONFLICT');
    const mismatches = await db.database.prisma.peerMismatch.findMany({ where: { jobId: id } });
    expect(mismatches).toMatchObject([{ reporterId: bob.userId, peerUserId: cy.userId, peerName: 'Cy' }]);

    // Bob sees the job he asked for; Cy, who served it last, sees it too; Ada does not.
    expect((await bob.api.jobs.list.query()).map((job) => [job.id, job.checkResult, job.server?.displayName])).toEqual([
      [id, 'MISMATCH', 'Cy'],
    ]);
    expect((await cy.api.jobs.list.query()).map((job) => job.id)).toEqual([id]);
    expect(await ada.api.jobs.list.query()).toEqual([]);

    const stats = await ada.api.jobs.roomStats.query({ room: 'global' });
    expect(stats).toMatchObject({
      room: 'global',
      jobs: { COMPLETED: 1 },
      tokensOut: 40,
      failovers: 1,
      mismatches: 1,
      servers: [{ name: 'Cy', jobs: 1, tokensOut: 40 }],
    });
  });

  it('records a pipeline job with each stage peer and its layers, a stage taken over, and a chain checking it', async () => {
    const pia = await member('Pia');
    const [first, second, spare, checkA, checkB] = await Promise.all(
      ['StageA', 'StageB', 'StageSpare', 'CheckA', 'CheckB'].map((name) => member(name)),
    );
    const idle = await member('StageIdle', false);
    const stages = [
      { peerId: first!.peerId, layers: [0, 2] as [number, number] },
      { peerId: second!.peerId, layers: [2, 4] as [number, number] },
    ];
    const start = (input: object) =>
      pia.api.jobs.start.mutate({ room: 'global', serverPeerId: second!.peerId, model, stages, ...input } as never);
    // The chain must start at layer 0 and follow on, each stage on its own peer, its server the last stage (it
    // samples); every stage's peer in the room and sharing.
    const refusals = [
      { stages: [stages[1]] },
      { stages: [stages[0], { ...stages[1], layers: [3, 4] }] },
      { stages: [stages[0], { ...stages[1], peerId: first!.peerId }], serverPeerId: first!.peerId },
      { serverPeerId: first!.peerId },
      { stages: [{ ...stages[0], peerId: idle.peerId }, stages[1]] },
      { stages: [{ ...stages[0], layers: [0, 0] }, stages[1]] },
    ];
    for (const refusal of refusals)
      expect(codeOf(await start(refusal).catch((e: unknown) => e)), JSON.stringify(refusal)).toBe('BAD_REQUEST');
    const { id } = await start({});
    // A whole-model job's server takes no layers; a pipeline's takes over the layers of a stage.
    expect(
      codeOf(await pia.api.jobs.attempt.mutate({ id, peerId: spare!.peerId, role: 'SERVER' }).catch((e: unknown) => e)),
    ).toBe('BAD_REQUEST');
    expect(
      codeOf(
        await pia.api.jobs.attempt
          .mutate({ id, peerId: checkA!.peerId, role: 'CHECKER', layers: [0, 2] })
          .catch((e: unknown) => e),
      ),
    ).toBe('BAD_REQUEST');
    expect(await pia.api.jobs.attempt.mutate({ id, peerId: spare!.peerId, role: 'SERVER', layers: [2, 4] })).toEqual({
      id,
      peerId: spare!.peerId,
      role: 'SERVER',
      layers: [2, 4],
    });
    await pia.api.jobs.finish.mutate({
      id,
      outcome: 'COMPLETED',
      serverPeerId: spare!.peerId,
      tokensIn: 30,
      tokensOut: 20,
      failoverCount: 1,
    });
    // A chain of two other peers re-ran it and disagreed, and so did a second opinion: the served chain is caught.
    for (const checker of [checkA!, checkB!])
      await pia.api.jobs.attempt.mutate({ id, peerId: checker.peerId, role: 'CHECKER' });
    expect(
      await pia.api.jobs.check.mutate({
        id,
        result: 'MISMATCH',
        excludedPeerIds: [first!.peerId, spare!.peerId],
      }),
    ).toEqual({ id, mismatches: 2 });
    const row = await db.database.prisma.inferenceJob.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ stages: 2, serverId: spare!.userId, failoverCount: 1, checkResult: 'MISMATCH' });
    const [listed] = await pia.api.jobs.list.query();
    expect(listed).toMatchObject({ id, stages: 2, server: { displayName: 'StageSpare' } });
    expect(listed?.peers).toEqual([
      { displayName: 'StageA', layerFrom: 0, layerTo: 2 },
      { displayName: 'StageB', layerFrom: 2, layerTo: 4 },
      { displayName: 'StageSpare', layerFrom: 2, layerTo: 4 },
    ]);
    // A whole-model job is no pipeline job: its list entry has no stages, and its server takes no layers.
    const whole = await pia.api.jobs.start.mutate({ room: 'global', serverPeerId: first!.peerId, model });
    expect(
      codeOf(
        await pia.api.jobs.attempt
          .mutate({ id: whole.id, peerId: second!.peerId, role: 'SERVER', layers: [0, 4] })
          .catch((e: unknown) => e),
      ),
    ).toBe('BAD_REQUEST');
    expect((await pia.api.jobs.list.query()).find((job) => job.id === whole.id)).toMatchObject({
      stages: null,
      peers: [],
    });
  });

  it('refuses malformed reports and caps the jobs one person keeps running', async () => {
    const bob = await member('Bob2');
    const ada = await member('Ada2');
    // A peer that does not share cannot be named as a job's server.
    const idle = await member('Idle', false);
    expect(
      codeOf(
        await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: idle.peerId, model }).catch((e: unknown) => e),
      ),
    ).toBe('BAD_REQUEST');
    expect(
      codeOf(
        await bob.api.jobs.start
          .mutate({ room: 'global', serverPeerId: 'not-a-uuid', model } as never)
          .catch((e: unknown) => e),
      ),
    ).toBe('BAD_REQUEST');
    expect(
      codeOf(
        await bob.api.jobs.start
          .mutate({ room: 'global', serverPeerId: ada.peerId, model: { id: 'x', sha256: 'short' } })
          .catch((e: unknown) => e),
      ),
    ).toBe('BAD_REQUEST');
    const started: { id: string }[] = [];
    for (let i = 0; i < 16; i++)
      started.push(await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model }));
    expect(
      codeOf(
        await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model }).catch((e: unknown) => e),
      ),
    ).toBe('TOO_MANY_REQUESTS');
    // Finishing one frees a place; so does one left running past any deadline (its tab was closed).
    await bob.api.jobs.finish.mutate({
      id: started[0]?.id ?? '',
      outcome: 'CANCELLED',
      tokensIn: 0,
      tokensOut: 0,
      failoverCount: 0,
    });
    await expect(bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model })).resolves.toMatchObject(
      { id: expect.any(String) },
    );
    await db.database.prisma.inferenceJob.update({
      where: { id: started[1]?.id ?? '' },
      data: { createdAt: new Date(Date.now() - 21 * 60_000) },
    });
    await expect(bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model })).resolves.toMatchObject(
      { id: expect.any(String) },
    );
    // The place was free without marking it; the list marks it before showing it.
    const abandoned = () => db.database.prisma.inferenceJob.findUnique({ where: { id: started[1]?.id ?? '' } });
    expect(await abandoned()).toMatchObject({ outcome: 'RUNNING' });
    const listed = await bob.api.jobs.list.query();
    expect(listed.find((job) => job.id === started[1]?.id)).toMatchObject({ outcome: 'FAILED' });
    expect(await abandoned()).toMatchObject({ outcome: 'FAILED', errorCode: 'ABANDONED' });
    // Still at the limit with it gone: 16 running.
    expect(
      codeOf(
        await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model }).catch((e: unknown) => e),
      ),
    ).toBe('TOO_MANY_REQUESTS');
    // A peer that left the room cannot be named any more.
    const left = nextEvent(bob.socket, 'peer:left', 10_000);
    ada.socket.disconnect();
    expect(await left).toMatchObject({ peerId: ada.peerId });
    expect(
      codeOf(
        await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model }).catch((e: unknown) => e),
      ),
    ).toBe('NOT_FOUND');
  });
  it('lets finish and check name only the peers the server recorded taking that job, each once', async () => {
    const bob = await member('Bob3');
    const ada = await member('Ada3');
    const cy = await member('Cy3');
    const dee = await member('Dee3');
    const idle = await member('Idle3', false);
    const refused = (call: Promise<unknown>) => call.then(() => 'accepted', codeOf);

    const { id } = await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model });
    // Cy is in the room and shares, but never took this job: it cannot be named as its server.
    const finish = { id, outcome: 'COMPLETED' as const, tokensIn: 3, tokensOut: 9, failoverCount: 0 };
    expect(await refused(bob.api.jobs.finish.mutate({ ...finish, serverPeerId: cy.peerId }))).toBe('BAD_REQUEST');
    // Taking a job is checked like starting one: the peer must be in the room now, and share; the job must be yours.
    const stranger = '00000000-0000-4000-8000-000000000000';
    expect(await refused(bob.api.jobs.attempt.mutate({ id, peerId: stranger, role: 'SERVER' }))).toBe('NOT_FOUND');
    expect(await refused(bob.api.jobs.attempt.mutate({ id, peerId: idle.peerId, role: 'CHECKER' }))).toBe(
      'BAD_REQUEST',
    );
    expect(await refused(cy.api.jobs.attempt.mutate({ id, peerId: cy.peerId, role: 'SERVER' }))).toBe('NOT_FOUND');
    expect(await refused(bob.api.jobs.attempt.mutate({ id, peerId: ada.peerId, role: 'CHECKER' }))).toBe('CONFLICT');
    await bob.api.jobs.finish.mutate({ ...finish, serverPeerId: ada.peerId });
    expect(await refused(bob.api.jobs.attempt.mutate({ id, peerId: cy.peerId, role: 'SERVER' }))).toBe('CONFLICT');

    // No checker recorded: nobody re-ran the job, so its check can only be UNRESOLVED and name nobody.
    expect(await refused(bob.api.jobs.check.mutate({ id, result: 'MATCH', excludedPeerIds: [] }))).toBe('BAD_REQUEST');
    expect(await refused(bob.api.jobs.check.mutate({ id, result: 'UNRESOLVED', excludedPeerIds: [ada.peerId] }))).toBe(
      'BAD_REQUEST',
    );
    await bob.api.jobs.attempt.mutate({ id, peerId: dee.peerId, role: 'CHECKER' });
    // Naming the same peer again in the same role changes nothing.
    await bob.api.jobs.attempt.mutate({ id, peerId: dee.peerId, role: 'CHECKER' });
    // A mismatch may not be pinned on a peer that did not take the job, nor on one peer twice.
    expect(await refused(bob.api.jobs.check.mutate({ id, result: 'MISMATCH', excludedPeerIds: [cy.peerId] }))).toBe(
      'BAD_REQUEST',
    );
    expect(
      await refused(bob.api.jobs.check.mutate({ id, result: 'MISMATCH', excludedPeerIds: [ada.peerId, ada.peerId] })),
    ).toBe('BAD_REQUEST');
    expect(await db.database.prisma.peerMismatch.count({ where: { jobId: id } })).toBe(0);

    expect(await bob.api.jobs.check.mutate({ id, result: 'MISMATCH', excludedPeerIds: [ada.peerId] })).toEqual({
      id,
      mismatches: 1,
    });
    const recorded = await db.database.prisma.inferenceJobPeer.findMany({
      where: { jobId: id },
      orderBy: { createdAt: 'asc' },
      select: { peerId: true, userId: true, displayName: true, role: true },
    });
    expect(recorded).toEqual([
      { peerId: ada.peerId, userId: ada.userId, displayName: 'Ada3', role: 'SERVER' },
      { peerId: dee.peerId, userId: dee.userId, displayName: 'Dee3', role: 'CHECKER' },
    ]);
    expect(
      await db.database.prisma.peerMismatch.findMany({
        where: { jobId: id },
        select: { peerUserId: true, peerName: true },
      }),
    ).toEqual([{ peerUserId: ada.userId, peerName: 'Ada3' }]);
  });

  it('starts a job only in a room its requester may use: a private room for its members, a public one for anyone', async () => {
    const account = async (name: string) => {
      const { cookie, userId } = await accountCookie(db.database.prisma, name);
      return { api: chatClient(base, cookie), cookie, userId };
    };
    const owner = await account('jobs-owner');
    const friend = await account('jobs-friend');
    const outsider = await account('jobs-outsider');
    const hideout = await owner.api.room.create.mutate({ name: 'Hideout', visibility: 'PRIVATE' });
    const hall = await owner.api.room.create.mutate({ name: 'Hall', visibility: 'PUBLIC' });
    await friend.api.room.join.mutate({ room: hideout.slug, inviteCode: hideout.inviteCode ?? '' });
    const capabilities = { backend: 'wasm' as const, models: [], tokensPerSecond: null, sharing: true, queue: 0 };
    const server = await connectMesh(base, sockets, { cookie: owner.cookie });
    const serving: Record<string, string> = {};
    for (const room of [hideout.slug, hall.slug]) {
      const joined = (await server.emitWithAck('room:join', { room, capabilities })) as Ack<{ self: PeerInfo }>;
      if (!joined.ok) throw new Error(joined.message);
      serving[room] = joined.data.self.peerId;
    }
    const start = (who: typeof owner, room: string, serverPeerId = serving[room] ?? '') =>
      who.api.jobs.start.mutate({ room, serverPeerId, model }).catch((e: unknown) => e);

    expect(await start(friend, hideout.slug)).toMatchObject({ id: expect.any(String) });
    // A room the requester may not use is refused as such, whoever is in it and whatever peer is named.
    for (const peerId of [serving[hideout.slug], '00000000-0000-4000-8000-000000000000']) {
      const refused = await start(outsider, hideout.slug, peerId);
      expect(codeOf(refused)).toBe('NOT_FOUND');
      expect((refused as Error).message).toBe(`No room ${hideout.slug} among those you can use`);
    }
    expect(await start(outsider, hall.slug)).toMatchObject({ id: expect.any(String) });
    const rows = await db.database.prisma.inferenceJob.findMany({
      where: { requesterId: { in: [friend.userId, outsider.userId] } },
      select: { room: { select: { slug: true } }, serverId: true, outcome: true, peers: { select: { role: true } } },
    });
    expect(rows).toHaveLength(2);
    for (const row of rows)
      expect(row).toMatchObject({ serverId: owner.userId, outcome: 'RUNNING', peers: [{ role: 'SERVER' }] });
    expect(rows.map((row) => row.room?.slug).sort()).toEqual([hideout.slug, hall.slug].sort());
  });

  it('refuses job records past JOB_RECORDS_PER_MINUTE for one user, and not for another', async () => {
    const strict = await buildApp({ env: testEnv({ JOB_RECORDS_PER_MINUTE: '3' }), database: db.database });
    apps.push(strict);
    const strictBase = await strict.listen({ host: '127.0.0.1', port: 0 });
    const bob = await member('Bob4', true, strictBase);
    const ada = await member('Ada4', true, strictBase);
    const cy = await member('Cy4', true, strictBase);

    const { id } = await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model });
    await bob.api.jobs.attempt.mutate({ id, peerId: cy.peerId, role: 'SERVER' });
    await bob.api.jobs.finish.mutate({
      id,
      outcome: 'COMPLETED',
      serverPeerId: cy.peerId,
      tokensIn: 1,
      tokensOut: 1,
      failoverCount: 1,
    });
    // The fourth record in a minute is refused, whatever it is, and says why.
    const refusal = await bob.api.jobs.check
      .mutate({ id, result: 'UNRESOLVED', excludedPeerIds: [] })
      .catch((e: unknown) => e);
    expect(codeOf(refusal)).toBe('TOO_MANY_REQUESTS');
    expect((refusal as Error).message).toMatch(/^Too many job records: at most 3 per minute; retry in \d+ s$/);
    expect(
      codeOf(
        await bob.api.jobs.start.mutate({ room: 'global', serverPeerId: ada.peerId, model }).catch((e: unknown) => e),
      ),
    ).toBe('TOO_MANY_REQUESTS');
    // Another user's budget is their own.
    await expect(ada.api.jobs.start.mutate({ room: 'global', serverPeerId: cy.peerId, model })).resolves.toMatchObject({
      id: expect.any(String),
    });
    expect(await db.database.prisma.inferenceJob.findUniqueOrThrow({ where: { id } })).toMatchObject({
      outcome: 'COMPLETED',
      serverId: cy.userId,
      checkResult: null,
    });
  });
});
