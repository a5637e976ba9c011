// Two server nodes in one process, sharing one database and one Redis (the streams adapter), as behind a load
// balancer at scale: presence, signals, room capacity, revocations, recovered connections and shutdown cross
// between them. Skips when Redis is not reachable, unless REQUIRE_REDIS=1 (CI).
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { createClient } from 'redis';
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { createRoom, joinRoom } from '../src/server/services/room.ts';
import { createSession, sessionPolicy } from '../src/server/services/session.ts';
import type { Ack, PeerInfo, ServerToClientEvents } from '../src/shared/socket-contract.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { accountCookie } from './support/accounts.ts';
import { type MeshClient, connectMesh, nextEvent } from './support/mesh-socket.ts';
import { guestCookie } from './support/server-process.ts';
import { tcpProxy } from './support/tcp-proxy.ts';

type Client = MeshClient;
interface Node {
  app: FastifyInstance;
  base: string;
  port: number;
}

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function openRedis() {
  const client = createClient({ url: REDIS_URL, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  client.on('error', () => {}); // a failed connect rejects below
  try {
    await client.connect();
    return client;
  } catch {
    if (process.env.REQUIRE_REDIS === '1')
      throw new Error(`REQUIRE_REDIS=1 but Redis at ${REDIS_URL} is not reachable`);
    console.warn(`Redis at ${REDIS_URL} is not reachable: skipping the multi-node socket tests`);
    return null;
  }
}

const redis = await openRedis();

describe.skipIf(redis === null)('two server nodes sharing Redis', () => {
  // This run's stream, channels and session keys: parallel runs on one Redis neither meet nor collide.
  const prefix = `mesh-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  let db: TestDatabase;
  let a: Node;
  let b: Node;
  const open: Client[] = [];

  async function startNode(): Promise<Node> {
    // On PostgreSQL each node opens its own pool, as a separate process would; PGlite (where PostgreSQL is not
    // reachable and not required) lives in one process, so the nodes share the one object.
    // Many sockets from one address: tests/socket-limits.test.ts covers the handshake budget.
    const env = testEnv({
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      DATABASE_POOL_SIZE: '4',
      SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '10000',
      ...(db.url ? { DATABASE_URL: db.url } : {}),
    });
    const app = await buildApp({ env, ...(db.url ? {} : { database: db.database }) });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    return { app, base, port: Number(new URL(base).port) };
  }

  /** Until each node's adapter counts exactly these nodes (they meet through Redis PUB/SUB). */
  async function cluster(nodes: Node[]) {
    await vi.waitFor(async () =>
      expect(await Promise.all(nodes.map((node) => node.app.mesh.adapter.serverCount()))).toEqual(
        nodes.map(() => nodes.length),
      ),
    );
  }

  beforeAll(async () => {
    db = await openTestDatabase(inject('postgres') ? 'postgres' : 'pglite');
    a = await startNode();
    b = await startNode();
    await cluster([a, b]);
  });
  afterEach(() => {
    for (const socket of open.splice(0)) socket.disconnect();
  });
  afterAll(async () => {
    await a?.app.close();
    await b?.app.close();
    await db?.cleanup();
    if (redis) {
      for await (const keys of redis.scanIterator({ MATCH: `${prefix}:*`, COUNT: 100 })) {
        if (keys.length > 0) await redis.del(keys);
      }
      await redis.close();
    }
  });

  function connect(
    url: string,
    cookie: string,
    options: Partial<ManagerOptions & SocketOptions> = {},
  ): Promise<Client> {
    return connectMesh(url, open, { cookie, ...options });
  }

  const account = (username: string) => accountCookie(db.database.prisma, username);

  async function join(socket: Client, room: string) {
    return (await socket.emitWithAck('room:join', { room })) as Ack<{
      room: string;
      self: PeerInfo;
      peers: PeerInfo[];
    }>;
  }

  async function joined(socket: Client, room: string) {
    const result = await join(socket, room);
    if (!result.ok) throw new Error(`join ${room} failed: ${result.error}`);
    return result.data;
  }

  const next = <E extends keyof ServerToClientEvents>(socket: Client, event: E, timeoutMs = 3000) =>
    nextEvent(socket, event, timeoutMs);

  function disconnected(socket: Client, timeoutMs = 3000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still connected after ${timeoutMs} ms`)), timeoutMs);
      socket.once('disconnect', (reason) => {
        clearTimeout(timer);
        resolve(reason);
      });
    });
  }

  it('lists and announces a peer on one node to a peer on the other', async () => {
    const onB = await connect(b.base, await guestCookie(a.base, 'Bea'));
    const onA = await connect(a.base, await guestCookie(a.base, 'Abe'));
    const inB = await joined(onB, 'global');
    const announced = next(onB, 'peer:joined');
    const inA = await joined(onA, 'global');
    expect(inA.peers).toContainEqual(expect.objectContaining({ peerId: inB.self.peerId, displayName: 'Bea' }));
    expect(await announced).toMatchObject({ room: 'global', peer: { peerId: inA.self.peerId, displayName: 'Abe' } });
  });

  it('relays a signal to a peer on the other node, stamped with the sender, and not into another room', async () => {
    const owner = await account('signal-owner');
    const other = await createRoom(db.database.prisma, owner.userId, {
      name: 'Elsewhere',
      visibility: 'PUBLIC',
      capacity: 4,
    });
    const sender = await connect(a.base, await guestCookie(a.base));
    const target = await connect(b.base, await guestCookie(a.base));
    const outsider = await connect(b.base, owner.cookie);
    const from = await joined(sender, 'global');
    const to = await joined(target, 'global');
    const elsewhere = await joined(outsider, other.slug);
    const seenByOutsider: unknown[] = [];
    outsider.on('signal', (signal) => seenByOutsider.push(signal));

    const received = next(target, 'signal');
    expect(
      await sender.emitWithAck('signal:relay', { room: 'global', to: to.self.peerId, data: { sdp: 'offer' } }),
    ).toEqual({ ok: true, data: null });
    expect(await received).toEqual({ room: 'global', from: from.self.peerId, data: { sdp: 'offer' } });
    expect(
      await sender.emitWithAck('signal:relay', { room: 'global', to: elsewhere.self.peerId, data: 1 }),
    ).toMatchObject({ ok: false, error: 'PEER_NOT_FOUND' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seenByOutsider).toEqual([]);
  });

  /** A room of `members` accounts (the owner first) with `capacity` seats, lowered after they all joined. */
  async function roomOf(name: string, members: number, capacity: number) {
    const people = await Promise.all(Array.from({ length: members }, (_, i) => account(`${name}-${i}`)));
    const [owner, ...others] = people;
    if (!owner) throw new Error('no owner');
    const room = await createRoom(db.database.prisma, owner.userId, { name, visibility: 'PUBLIC', capacity: members });
    for (const member of others) await joinRoom(db.database.prisma, member.userId, room.slug);
    await db.database.prisma.room.update({ where: { id: room.id }, data: { capacity } });
    return { room, people };
  }

  it('counts the people on both nodes against a room’s capacity', async () => {
    const { room, people } = await roomOf('pair', 3, 2);
    const [owner, member, third] = people;
    if (!owner || !member || !third) throw new Error('missing people');
    await joined(await connect(a.base, owner.cookie), room.slug);
    await joined(await connect(b.base, member.cookie), room.slug);
    // Node A holds one of the two: it refuses a third person only by counting node B's.
    expect(await join(await connect(a.base, third.cookie), room.slug)).toMatchObject({ ok: false, error: 'ROOM_FULL' });
    // A second tab of someone already there shares that seat, on either node.
    expect(await join(await connect(a.base, member.cookie), room.slug)).toMatchObject({ ok: true });
    expect(await join(await connect(b.base, owner.cookie), room.slug)).toMatchObject({ ok: true });
  });

  it('lets exactly as many people in as the room holds when sockets on both nodes join at once', async () => {
    const { room, people } = await roomOf('rush', 10, 3);
    const tabs = await Promise.all(people.map((person, i) => connect(i % 2 ? a.base : b.base, person.cookie)));
    const results = await Promise.all(tabs.map((tab) => join(tab, room.slug)));
    expect(results.filter((r) => r.ok)).toHaveLength(3);
    expect(results.filter((r) => !r.ok && r.error === 'ROOM_FULL')).toHaveLength(7);
  });

  it('counts a session’s sockets on both nodes against its cap', async () => {
    const cookie = await guestCookie(a.base);
    // SOCKETS_PER_SESSION (8): four on each node, then a ninth is refused on either.
    for (let i = 0; i < 8; i++) await connect(i % 2 ? a.base : b.base, cookie);
    for (const node of [a, b])
      await expect(connect(node.base, cookie)).rejects.toMatchObject({ data: { code: 'TOO_MANY_SOCKETS' } });
  });

  it('keeps a socket’s session cookie off the handshake other nodes fetch through Redis', async () => {
    const socket = await connect(a.base, await guestCookie(a.base));
    const seen = (await b.app.mesh.fetchSockets()).find((remote) => remote.id === socket.id);
    expect(seen?.handshake.headers).toMatchObject({ host: expect.any(String) });
    expect(seen?.handshake.headers.cookie).toBeUndefined();
  });

  it('disconnects the sockets of a session signed out on the other node, and only those', async () => {
    const { cookie, userId } = await account('leaving');
    const { token } = await createSession(db.database.prisma, userId, sessionPolicy(14, 90));
    const onA = await connect(a.base, cookie);
    const onB = await connect(b.base, cookie);
    const otherTab = await connect(b.base, `mesh_session=${token}`);
    await joined(onB, 'global');
    const dropped = [onA, onB].map((socket) => disconnected(socket));
    const response = await fetch(`${a.base}/api/trpc/auth.logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(200);
    expect(await Promise.all(dropped)).toEqual(['io server disconnect', 'io server disconnect']);
    expect(otherTab.connected).toBe(true);
    await expect(connect(b.base, cookie)).rejects.toThrow(/no valid session/);
  });

  it('tells a peer on the other node when a socket disconnects', async () => {
    const onA = await connect(a.base, await guestCookie(a.base));
    const onB = await connect(b.base, await guestCookie(a.base));
    const leaving = await joined(onA, 'global');
    await joined(onB, 'global');
    const left = next(onB, 'peer:left');
    onA.disconnect();
    expect(await left).toEqual({ room: 'global', peerId: leaving.self.peerId });
  });

  it('recovers a connection on the other node with its peer id, rooms and missed events', async () => {
    const balancer = await tcpProxy(a.port);
    try {
      const moving = await connect(balancer.url, await guestCookie(a.base, 'Mo'), {
        reconnection: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 100,
      });
      const watcher = await connect(b.base, await guestCookie(a.base, 'Wat'));
      const before = await joined(moving, 'global');
      // A broadcast gives the client an offset in the stream to recover from.
      const first = next(moving, 'peer:joined');
      await joined(watcher, 'global');
      await first;

      const left = next(watcher, 'peer:left');
      balancer.route(null); // node A is gone for this client; its session is kept in Redis
      expect(await left).toMatchObject({ peerId: before.self.peerId });
      const missed = next(moving, 'peer:joined');
      const late = await joined(await connect(b.base, await guestCookie(a.base, 'Late')), 'global');

      const back = next(watcher, 'peer:joined');
      balancer.route(b.port);
      expect(await missed).toMatchObject({ room: 'global', peer: { peerId: late.self.peerId } });
      expect(moving.recovered).toBe(true);
      expect(await back).toMatchObject({ room: 'global', peer: { peerId: before.self.peerId, displayName: 'Mo' } });
      // Back in the room on node B: signals reach it there.
      const signal = next(moving, 'signal');
      expect(await watcher.emitWithAck('signal:relay', { room: 'global', to: before.self.peerId, data: 'hi' })).toEqual(
        { ok: true, data: null },
      );
      expect(await signal).toMatchObject({ data: 'hi' });
    } finally {
      balancer.close();
    }
  });

  it('ends only its own sockets when a node shuts down, and the others hear they left', async () => {
    const c = await startNode();
    try {
      await cluster([a, b, c]);
      const onC = await connect(c.base, await guestCookie(a.base));
      const onA = await connect(a.base, await guestCookie(a.base));
      const leaving = await joined(onC, 'global');
      await joined(onA, 'global');
      const left = next(onA, 'peer:left');
      await c.app.close();
      expect(await left).toEqual({ room: 'global', peerId: leaving.self.peerId });
      expect(onA.connected).toBe(true);
      await cluster([a, b]);
    } finally {
      await c.app.close(); // a no-op unless the test failed before closing it
    }
  });
});
