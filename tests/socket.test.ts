// Signaling over real socket.io-client connections to a listening server: sessions and Origin at the handshake,
// presence, signals only to their target in the same room with a server-stamped sender, size and rate limits
// that do not slow other clients, and room capacity under 50 concurrent joins (PGlite and PostgreSQL).
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { createRoom, joinRoom } from '../src/server/services/room.ts';
import { createSession, sessionPolicy } from '../src/server/services/session.ts';
import type { Ack, PeerInfo, ServerToClientEvents } from '../src/shared/socket-contract.ts';
import { type TestDatabase, databaseKinds, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { accountCookie } from './support/accounts.ts';
import { type MeshClient, connectMesh, nextEvent } from './support/mesh-socket.ts';
import { guestCookie } from './support/server-process.ts';

type Client = MeshClient;

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
const open: Client[] = [];

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  // These tests open many sockets from one address; tests/socket-limits.test.ts covers the handshake budget.
  app = await buildApp({
    env: testEnv({ SOCKET_EVENTS_PER_SECOND: '40', SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '10000' }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterEach(() => {
  for (const socket of open.splice(0)) socket.disconnect();
});
afterAll(async () => {
  await app?.close();
  await db?.cleanup();
});

function connect(cookie: string | null, origin: string | null = base): Promise<Client> {
  return connectMesh(base, open, { cookie, origin });
}

const account = (username: string) => accountCookie(db.database.prisma, username);

function join(socket: Client, room: string) {
  return socket.emitWithAck('room:join', { room }) as Promise<Ack<{ room: string; self: PeerInfo; peers: PeerInfo[] }>>;
}

const next = <E extends keyof ServerToClientEvents>(socket: Client, event: E, timeoutMs = 2000) =>
  nextEvent(socket, event, timeoutMs);

describe('the /mesh handshake', () => {
  it('refuses a socket without a valid session, with a clear reason', async () => {
    await expect(connect(null)).rejects.toThrow(/no valid session/);
    await expect(connect('mesh_session=forged.token')).rejects.toThrow(/no valid session/);
  });

  it('refuses a browser connection from another origin', async () => {
    await expect(connect(await guestCookie(base), 'https://evil.example')).rejects.toThrow();
  });
});

describe('logout', () => {
  it('disconnects the sockets of the session that signed out, and only those', async () => {
    const { cookie, userId } = await account('leaving');
    const { token } = await createSession(db.database.prisma, userId, sessionPolicy(14, 90));
    const mine = await connect(cookie);
    const otherTab = await connect(`mesh_session=${token}`);
    await join(mine, 'global');
    const dropped = new Promise<string>((resolve) => mine.once('disconnect', resolve));
    const response = await fetch(`${base}/api/trpc/auth.logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(200);
    expect(await dropped).toBe('io server disconnect');
    expect(otherTab.connected).toBe(true);
    await expect(connect(cookie)).rejects.toThrow(/no valid session/);
  });
});

describe('rooms and presence', () => {
  it('tells members who joins, updates and leaves, and lists who is there', async () => {
    const a = await connect(await guestCookie(base, 'Alice'));
    const b = await connect(await guestCookie(base, 'Bob'));
    const joinedA = await join(a, 'global');
    expect(joinedA).toMatchObject({ ok: true, data: { room: 'global', peers: [] } });
    const announced = next(a, 'peer:joined');
    const joinedB = await join(b, 'global');
    if (!joinedA.ok || !joinedB.ok) throw new Error('join failed');
    expect(joinedB.data.peers.map((p) => p.displayName)).toEqual(['Alice']);
    expect(await announced).toMatchObject({
      room: 'global',
      peer: { displayName: 'Bob', peerId: joinedB.data.self.peerId },
    });

    const updated = next(a, 'peer:updated');
    const capabilities = {
      backend: 'webgpu' as const,
      models: [{ id: 'nano-shakespeare', sha256: 'a'.repeat(64) }],
      tokensPerSecond: 41,
      sharing: true,
      queue: 0,
    };
    expect(await b.emitWithAck('peer:update', { room: 'global', capabilities })).toEqual({ ok: true, data: null });
    expect(await updated).toMatchObject({ peer: { peerId: joinedB.data.self.peerId, capabilities } });

    const left = next(a, 'peer:left');
    expect(await b.emitWithAck('room:leave', { room: 'global' })).toEqual({ ok: true, data: null });
    expect(await left).toEqual({ room: 'global', peerId: joinedB.data.self.peerId });
    await join(b, 'global');
    const gone = next(a, 'peer:left');
    b.disconnect();
    expect(await gone).toMatchObject({ peerId: joinedB.data.self.peerId });
  });

  it('keeps guests out of custom rooms and lets members in', async () => {
    const owner = await account('rooms-owner');
    const room = await createRoom(db.database.prisma, owner.userId, {
      name: 'Workshop',
      visibility: 'PRIVATE',
      capacity: 4,
    });
    const guest = await connect(await guestCookie(base));
    expect(await join(guest, room.slug)).toMatchObject({ ok: false, error: 'FORBIDDEN' });
    const outsider = await account('rooms-outsider');
    expect(await join(await connect(outsider.cookie), room.slug)).toMatchObject({ ok: false, error: 'FORBIDDEN' });
    expect(await join(await connect(owner.cookie), room.slug)).toMatchObject({ ok: true });
    expect(await join(guest, 'no-such-room')).toMatchObject({ ok: false, error: 'NOT_FOUND' });
  });
});

describe('signal:relay', () => {
  it('delivers a signal only to its target in the same room, stamped with the sender', async () => {
    const owner = await account('signal-owner');
    const other = await createRoom(db.database.prisma, owner.userId, {
      name: 'Elsewhere',
      visibility: 'PUBLIC',
      capacity: 4,
    });
    const a = await connect(await guestCookie(base));
    const b = await connect(await guestCookie(base));
    const c = await connect(owner.cookie);
    const ja = await join(a, 'global');
    const jb = await join(b, 'global');
    const jc = await join(c, other.slug);
    if (!ja.ok || !jb.ok || !jc.ok) throw new Error('join failed');
    const seenByC: unknown[] = [];
    c.on('signal', (s) => seenByC.push(s));

    const received = next(b, 'signal');
    expect(
      await a.emitWithAck('signal:relay', { room: 'global', to: jb.data.self.peerId, data: { sdp: 'offer' } }),
    ).toEqual({ ok: true, data: null });
    expect(await received).toEqual({ room: 'global', from: ja.data.self.peerId, data: { sdp: 'offer' } });

    // A peer in another room is not reachable through this one; nor is a room the sender is not in.
    expect(await a.emitWithAck('signal:relay', { room: 'global', to: jc.data.self.peerId, data: 1 })).toMatchObject({
      ok: false,
      error: 'PEER_NOT_FOUND',
    });
    expect(await a.emitWithAck('signal:relay', { room: other.slug, to: jc.data.self.peerId, data: 1 })).toMatchObject({
      ok: false,
      error: 'NOT_IN_ROOM',
    });
    // The sender cannot name itself: an extra `from` is refused.
    const spoof = await a.emitWithAck('signal:relay', {
      room: 'global',
      to: jb.data.self.peerId,
      data: 1,
      from: jc.data.self.peerId,
    } as never);
    expect(spoof).toMatchObject({ ok: false, error: 'INVALID_PAYLOAD', message: expect.stringMatching(/from/) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seenByC).toEqual([]);
  });

  it("handles one socket's events in the order it sent them", async () => {
    const a = await connect(await guestCookie(base));
    const b = await connect(await guestCookie(base));
    const jb = await join(b, 'global');
    if (!jb.ok) throw new Error('join failed');
    const seen: unknown[] = [];
    b.on('signal', (event) => seen.push(event.data));
    // Sent without waiting: the join (which reads the database) is done before the update and the signals after
    // it are handled, and the signals arrive in order.
    const acks = await Promise.all([
      join(a, 'global'),
      a.emitWithAck('peer:update', {
        room: 'global',
        capabilities: { backend: 'wasm', models: [], tokensPerSecond: null, sharing: false, queue: 0 },
      }),
      ...Array.from({ length: 20 }, (_, i) =>
        a.emitWithAck('signal:relay', { room: 'global', to: jb.data.self.peerId, data: { n: i } }),
      ),
    ]);
    expect(acks.map((ack) => ack.ok)).toEqual(acks.map(() => true));
    await expect.poll(() => seen.length).toBe(20);
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => ({ n: i })));
  });

  it('refuses oversize signals and floods without slowing another client', async () => {
    const a = await connect(await guestCookie(base));
    const b = await connect(await guestCookie(base));
    const ja = await join(a, 'global');
    const jb = await join(b, 'global');
    if (!ja.ok || !jb.ok) throw new Error('join failed');
    const big = 'x'.repeat(70 * 1024);
    expect(await a.emitWithAck('signal:relay', { room: 'global', to: jb.data.self.peerId, data: big })).toMatchObject({
      ok: false,
      error: 'TOO_LARGE',
    });

    // A flood from A: past the per-socket budget its events are refused.
    const flood = await Promise.all(
      Array.from({ length: 200 }, () =>
        a.emitWithAck('peer:update', {
          room: 'global',
          capabilities: { backend: null, models: [], tokensPerSecond: null, sharing: false, queue: 0 },
        }),
      ),
    );
    const limited = flood.filter((r) => !r.ok && r.error === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThanOrEqual(150);
    // Each refusal says when to try again (within the one-second window).
    for (const refusal of limited) expect(refusal).toMatchObject({ retryInMs: expect.any(Number) });
    expect(Math.max(...limited.map((r) => (r.ok ? 0 : (r.retryInMs ?? -1))))).toBeLessThanOrEqual(1000);
    expect(Math.min(...limited.map((r) => (r.ok ? 0 : (r.retryInMs ?? -1))))).toBeGreaterThanOrEqual(0);
    // B, meanwhile, is answered at once.
    const started = performance.now();
    expect(await b.emitWithAck('signal:relay', { room: 'global', to: ja.data.self.peerId, data: 'ping' })).toEqual({
      ok: true,
      data: null,
    });
    expect(performance.now() - started).toBeLessThan(200);

    // A packet past the transport's cap closes that socket only.
    const closed = new Promise((resolve) => a.once('disconnect', resolve));
    a.emit('signal:relay', { room: 'global', to: jb.data.self.peerId, data: 'y'.repeat(200 * 1024) }, () => {});
    await closed;
    expect(b.connected).toBe(true);
  });
});

describe('room capacity in signaling', () => {
  it('lets exactly as many people in as the room holds when they all join at once', async () => {
    const owner = await account('rush-owner');
    const small = await createRoom(db.database.prisma, owner.userId, {
      name: 'Small',
      visibility: 'PUBLIC',
      capacity: 10,
    });
    const members = await Promise.all(Array.from({ length: 9 }, (_, i) => account(`rush-${i}`)));
    for (const member of members) await joinRoom(db.database.prisma, member.userId, small.slug);
    // Ten members, three seats: a capacity lowered after they joined (members never outnumber it otherwise).
    await db.database.prisma.room.update({ where: { id: small.id }, data: { capacity: 3 } });
    const tabs = await Promise.all([owner, ...members].map((person) => connect(person.cookie)));
    const results = await Promise.all(tabs.map((tab) => join(tab, small.slug)));
    expect(results.filter((r) => r.ok).length).toBe(3);
    expect(results.filter((r) => !r.ok && r.error === 'ROOM_FULL').length).toBe(7);
  });
});

describe.each(databaseKinds())('room capacity on %s', (kind) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await openTestDatabase(kind);
  });
  afterAll(() => database.cleanup());

  it('never overfills a room under 50 concurrent joins', async () => {
    const prisma = database.database.prisma;
    const users = await Promise.all(
      Array.from({ length: 51 }, (_, i) =>
        prisma.user.create({
          data: { kind: 'ACCOUNT', username: `cap-${kind}-${i}`, displayName: `u${i}` },
          select: { id: true },
        }),
      ),
    );
    const [owner, ...joiners] = users;
    if (!owner) throw new Error('no owner');
    const room = await createRoom(prisma, owner.id, { name: 'Small', visibility: 'PUBLIC', capacity: 8 });
    const results = await Promise.allSettled(joiners.map((u) => joinRoom(prisma, u.id, room.slug)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(7);
    const refusals = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
    expect(refusals).toHaveLength(43);
    expect(new Set(refusals)).toEqual(new Set(['This room is full (8 members)']));
    expect(await prisma.roomMember.count({ where: { roomId: room.id } })).toBe(8);
  }, 60_000);
});
