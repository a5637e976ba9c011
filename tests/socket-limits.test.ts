// Abuse limits of the /mesh namespace over real socket.io-client connections (issue 11, item 1; docs/SECURITY.md):
// sockets capped per session, user and address at the handshake, Engine.IO handshakes rate-limited per address,
// Host checked before Socket.IO answers, room capacity counted in people, recovered sockets re-checked, and
// sockets ended when their session expires. 127.0.0.2 and 127.0.0.3 stand in for other clients' addresses.
import http from 'node:http';
import type { FastifyInstance } from 'fastify';
import { io } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { createRoom, joinRoom } from '../src/server/services/room.ts';
import { type SessionPolicy, createSession } from '../src/server/services/session.ts';
import type { Ack, PeerInfo, ServerToClientEvents } from '../src/shared/socket-contract.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { type MeshClient, connectMesh, nextEvent } from './support/mesh-socket.ts';
import { tcpProxy } from './support/tcp-proxy.ts';

interface Server {
  app: FastifyInstance;
  base: string;
  port: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const LONG: SessionPolicy = { idleMs: 14 * DAY_MS, maxMs: 90 * DAY_MS };

let db: TestDatabase;
const servers: Server[] = [];
const open: MeshClient[] = [];
/** Default limits, except the handshake rate: these tests open many sockets from one address. */
let main: Server;

async function serve(overrides: Record<string, string> = {}): Promise<Server> {
  const app = await buildApp({ env: testEnv(overrides), database: db.database });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const server = { app, base, port: Number(new URL(base).port) };
  servers.push(server);
  return server;
}

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  main = await serve({ SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '10000' });
});
afterEach(() => {
  for (const socket of open.splice(0)) socket.disconnect();
});
afterAll(async () => {
  for (const server of servers) await server.app.close();
  await db?.cleanup();
});

let people = 0;

/** A new user (guest or account) with one session; `session()` makes more. */
async function person(kind: 'GUEST' | 'ACCOUNT' = 'GUEST') {
  const n = ++people;
  const user = await db.database.prisma.user.create({
    data: { kind, displayName: `p${n}`, ...(kind === 'ACCOUNT' ? { username: `limits-${n}` } : {}) },
    select: { id: true },
  });
  const session = async (policy: SessionPolicy = LONG) => {
    const made = await createSession(db.database.prisma, user.id, policy);
    return { cookie: `mesh_session=${made.token}`, id: made.session.id, expiresAt: made.session.expiresAt };
  };
  return { userId: user.id, ...(await session()), session };
}

function connect(
  server: Server,
  cookie: string | null,
  options: { from?: string; host?: string; polling?: boolean } = {},
) {
  return connectMesh(server.base, open, {
    cookie,
    ...(options.polling ? { transports: ['polling'] } : {}),
    ...(options.from ? ({ localAddress: options.from } as object) : {}),
    ...(options.host ? { extraHeaders: { ...(cookie ? { cookie } : {}), host: options.host } } : {}),
  });
}

/** The `data.code` a refused connect carried, or `transport` when the transport itself was refused. */
function reasonOf(error: unknown): string {
  const refused = error as Error & { data?: { code?: string } };
  return refused.data?.code ?? (/websocket error|xhr poll error/.test(refused.message) ? 'transport' : refused.message);
}

async function refusal(attempt: Promise<unknown>): Promise<string> {
  try {
    await attempt;
  } catch (error) {
    return reasonOf(error);
  }
  throw new Error('the connection was accepted');
}

function join(socket: MeshClient, room: string) {
  return socket.emitWithAck('room:join', { room }) as Promise<Ack<{ room: string; self: PeerInfo; peers: PeerInfo[] }>>;
}

const next = <E extends keyof ServerToClientEvents>(socket: MeshClient, event: E, timeoutMs = 5000) =>
  nextEvent(socket, event, timeoutMs);

function disconnected(socket: MeshClient, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still connected after ${timeoutMs} ms`)), timeoutMs);
    socket.once('disconnect', (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/** A plain HTTP request to the server, from `from` and with the given Host, as a hostile client can send one. */
function raw(
  server: Server,
  path: string,
  options: { method?: string; host?: string; from?: string; body?: string } = {},
) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method: options.method ?? 'GET',
        localAddress: options.from ?? '127.0.0.1',
        agent: false,
        headers: {
          host: options.host ?? `127.0.0.1:${server.port}`,
          ...(options.body ? { 'content-type': 'text/plain;charset=UTF-8' } : {}),
        },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

const HANDSHAKE = '/socket.io/?EIO=4&transport=polling';

describe('sockets per session, user and address', () => {
  it('leaves room in the global room for everyone else when one guest opens 70 sockets', async () => {
    // The embedded defaults, spelled out so a test-wide default cannot change what this proves.
    const defaults = await serve({
      SOCKETS_PER_SESSION: '8',
      SOCKETS_PER_USER_PER_ROOM: '4',
      SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '60',
    });
    const guest = await person();
    const attempts = await Promise.allSettled(Array.from({ length: 70 }, () => connect(defaults, guest.cookie)));
    const accepted = attempts.flatMap((attempt) => (attempt.status === 'fulfilled' ? [attempt.value] : []));
    // SOCKETS_PER_SESSION (8); past SOCKET_HANDSHAKES_PER_IP_PER_MINUTE (60) the transport itself is refused.
    expect(accepted).toHaveLength(8);
    const reasons = attempts.flatMap((attempt) => (attempt.status === 'rejected' ? [reasonOf(attempt.reason)] : []));
    expect(reasons).toContain('TOO_MANY_SOCKETS');
    expect(new Set(reasons)).toEqual(new Set(['TOO_MANY_SOCKETS', 'transport']));

    // Its sockets share one seat, and at most SOCKETS_PER_USER_PER_ROOM (4) of them are in the room.
    const joins = await Promise.all(accepted.map((socket) => join(socket, 'global')));
    expect(joins.filter((result) => result.ok)).toHaveLength(4);
    expect(joins.filter((result) => !result.ok && result.error === 'TOO_MANY_SOCKETS')).toHaveLength(4);

    const other = await person();
    const joined = await join(await connect(defaults, other.cookie, { from: '127.0.0.2' }), 'global');
    expect(joined).toMatchObject({ ok: true });
    if (!joined.ok) return;
    expect(joined.data.peers.map((peer) => peer.userId)).toEqual(Array.from({ length: 4 }, () => guest.userId));
  });

  it('refuses a socket past the per-session, per-user or per-address cap with TOO_MANY_SOCKETS, and frees the slot on disconnect', async () => {
    const strict = await serve({
      SOCKETS_PER_SESSION: '2',
      SOCKETS_PER_USER: '3',
      SOCKETS_PER_IP: '4',
      SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '10000',
    });
    const a = await person();
    const first = await connect(strict, a.cookie);
    await connect(strict, a.cookie);
    const perSession = await connect(strict, a.cookie).catch((error: unknown) => error as Error & { data?: unknown });
    expect(perSession).toMatchObject({
      message: expect.stringMatching(/2 sockets per session/),
      data: { code: 'TOO_MANY_SOCKETS' },
    });

    const second = await a.session();
    await connect(strict, second.cookie);
    await expect(connect(strict, second.cookie)).rejects.toMatchObject({
      message: expect.stringMatching(/3 sockets per user/),
      data: { code: 'TOO_MANY_SOCKETS' },
    });

    const b = await person();
    // Over polling, the namespace sees the handshake's request after its connection may have closed.
    await connect(strict, b.cookie, { polling: true });
    await expect(connect(strict, b.cookie)).rejects.toMatchObject({
      message: expect.stringMatching(/4 sockets per address/),
      data: { code: 'TOO_MANY_SOCKETS' },
    });
    // Another address has its own allowance.
    await connect(strict, b.cookie, { from: '127.0.0.2' });

    const before = strict.app.mesh.sockets.size;
    first.disconnect();
    await expect.poll(() => strict.app.mesh.sockets.size).toBe(before - 1);
    await connect(strict, a.cookie);
  });
});

describe('Engine.IO handshakes', () => {
  it('are rate-limited per address, and other addresses are not held up', async () => {
    const limited = await serve({ SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '3' });
    const someone = await person();
    for (let i = 0; i < 3; i++) expect((await raw(limited, HANDSHAKE)).status).toBe(200);
    const refused = await raw(limited, HANDSHAKE);
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({
      message: expect.stringMatching(/at most 3 a minute.*try again in \d+ s/),
    });
    expect(await refusal(connect(limited, someone.cookie))).toBe('transport');
    await connect(limited, someone.cookie, { from: '127.0.0.2' });
  });

  it('count each further namespace connect on one connection against the same budget', async () => {
    const limited = await serve({ SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '3' });
    const opened = await raw(limited, HANDSHAKE, { from: '127.0.0.3' });
    const { sid } = JSON.parse(opened.body.slice(1)) as { sid: string };
    const path = `${HANDSHAKE}&sid=${sid}`;
    // Four CONNECTs to /mesh on the one connection: the first came with the handshake, the next two are within
    // the budget of three, the last is not. None has a session.
    expect(
      (
        await raw(limited, path, {
          method: 'POST',
          from: '127.0.0.3',
          body: Array.from({ length: 4 }, () => '40/mesh,').join('\x1e'),
        })
      ).status,
    ).toBe(200);
    const codes: string[] = [];
    while (codes.length < 4) {
      const polled = await raw(limited, path, { from: '127.0.0.3' });
      for (const packet of polled.body.split('\x1e').filter((p) => p.startsWith('44/mesh,'))) {
        codes.push((JSON.parse(packet.slice('44/mesh,'.length)) as { data: { code: string } }).data.code);
      }
    }
    expect(codes.sort()).toEqual(['RATE_LIMITED', 'UNAUTHORIZED', 'UNAUTHORIZED', 'UNAUTHORIZED']);
  });

  it('refuse a connection addressed to a host name this server does not serve', async () => {
    const someone = await person();
    expect(await refusal(connect(main, someone.cookie, { host: `rebound.example:${main.port}` }))).toBe('transport');
    const refused = await raw(main, HANDSHAKE, { host: `rebound.example:${main.port}` });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ message: expect.stringMatching(/ALLOWED_HOSTS/) });
    expect((await raw(main, HANDSHAKE, { host: `localhost:${main.port}` })).status).toBe(200);
    await connect(main, someone.cookie, { host: `localhost:${main.port}` });
  });

  it('refuse the main namespace, which would hold a connection open without a session', async () => {
    const socket = io(main.base, { transports: ['websocket'], reconnection: false, forceNew: true });
    try {
      const error = await new Promise<Error>((resolve, reject) => {
        socket.once('connect', () => reject(new Error('connected to /')));
        socket.once('connect_error', resolve);
      });
      expect(error.message).toMatch(/\/mesh/);
    } finally {
      socket.disconnect();
    }
  });
});

describe('room capacity', () => {
  it("counts people, not sockets: a person's tabs share one seat, up to a few tabs", async () => {
    const owner = await person('ACCOUNT');
    const member = await person('ACCOUNT');
    const late = await person('ACCOUNT');
    const room = await createRoom(db.database.prisma, owner.userId, {
      name: 'Pair',
      visibility: 'PUBLIC',
      capacity: 3,
    });
    for (const who of [member, late]) await joinRoom(db.database.prisma, who.userId, room.slug);
    // Members cannot outnumber a room's capacity; a capacity lowered later can leave more members than seats.
    await db.database.prisma.room.update({ where: { id: room.id }, data: { capacity: 2 } });

    for (let tab = 0; tab < 3; tab++)
      expect(await join(await connect(main, owner.cookie), room.slug)).toMatchObject({ ok: true });
    expect(await join(await connect(main, member.cookie), room.slug)).toMatchObject({ ok: true });
    expect(await join(await connect(main, late.cookie), room.slug)).toMatchObject({ ok: false, error: 'ROOM_FULL' });
    expect(await join(await connect(main, owner.cookie), room.slug)).toMatchObject({ ok: true });
    expect(await join(await connect(main, owner.cookie), room.slug)).toMatchObject({
      ok: false,
      error: 'TOO_MANY_SOCKETS',
    });
  });

  it('takes a recovered socket out of a room that filled up while it was away, and tells it', async () => {
    const owner = await person('ACCOUNT');
    const away = await person('ACCOUNT');
    const newcomer = await person('ACCOUNT');
    const room = await createRoom(db.database.prisma, owner.userId, {
      name: 'Recover',
      visibility: 'PUBLIC',
      capacity: 3,
    });
    for (const who of [away, newcomer]) await joinRoom(db.database.prisma, who.userId, room.slug);
    await db.database.prisma.room.update({ where: { id: room.id }, data: { capacity: 2 } });

    const proxy = await tcpProxy(main.port);
    try {
      const watcher = await connect(main, owner.cookie);
      const moving = await connectMesh(proxy.url, open, {
        cookie: away.cookie,
        reconnection: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 100,
      });
      await join(watcher, room.slug);
      const before = await join(moving, room.slug);
      if (!before.ok) throw new Error('join failed');
      // A broadcast gives the client an offset to recover from.
      const updated = next(moving, 'peer:updated');
      await watcher.emitWithAck('peer:update', {
        room: room.slug,
        capabilities: { backend: null, models: [], tokensPerSecond: null, sharing: false, queue: 0 },
      });
      await updated;

      const left = next(watcher, 'peer:left');
      proxy.route(null);
      expect(await left).toMatchObject({ peerId: before.data.self.peerId });
      expect(await join(await connect(main, newcomer.cookie), room.slug)).toMatchObject({ ok: true });

      const kicked = next(moving, 'room:kicked');
      proxy.route(main.port);
      expect(await kicked).toMatchObject({
        room: room.slug,
        error: 'ROOM_FULL',
        message: expect.stringMatching(/2 people/),
      });
      expect(moving.recovered).toBe(true);
      expect(
        await watcher.emitWithAck('signal:relay', { room: room.slug, to: before.data.self.peerId, data: 'hi' }),
      ).toMatchObject({ ok: false, error: 'PEER_NOT_FOUND' });
      expect(await moving.emitWithAck('room:leave', { room: room.slug })).toMatchObject({
        ok: false,
        error: 'NOT_IN_ROOM',
      });
    } finally {
      proxy.close();
    }
  });
});

describe('session expiry', () => {
  it('disconnects a socket when its session reaches its absolute expiry', async () => {
    const someone = await person();
    const short = await someone.session({ idleMs: 60_000, maxMs: 2500 });
    const socket = await connect(main, short.cookie);
    expect(await disconnected(socket, 10_000)).toBe('io server disconnect');
    expect(Date.now()).toBeGreaterThanOrEqual(short.expiresAt.getTime());
    await expect(connect(main, short.cookie)).rejects.toThrow(/no valid session/);
  });

  it('disconnects a socket whose session expired unused at the next check, and keeps the others', async () => {
    const checked = await serve({ SOCKET_SESSION_CHECK_SECONDS: '1', SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '10000' });
    const someone = await person();
    const other = await someone.session();
    const ending = await connect(checked, someone.cookie);
    const staying = await connect(checked, other.cookie);
    // As the idle expiry passing with no use (or a purge) leaves it: nothing is announced to the socket layer.
    await db.database.prisma.session.update({
      where: { id: someone.id },
      data: { idleExpiresAt: new Date(Date.now() - 1000) },
    });
    expect(await disconnected(ending, 10_000)).toBe('io server disconnect');
    expect(staying.connected).toBe(true);
  });
});
