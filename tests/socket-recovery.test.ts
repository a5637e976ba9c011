// Connection-state recovery on one node (the in-memory adapter, src/server/socket/recovery-adapter.ts), over real
// socket.io-client connections through a TCP proxy that drops them: a dropped connection comes back with its peer
// id, its rooms and the events it missed, and the events kept for that stay within SOCKET_RECOVERY_BUFFER_MB
// (issue 16): past it, a connection whose offset was dropped comes back as a new socket, as after a restart.
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { createSession } from '../src/server/services/session.ts';
import { type Ack, type PeerInfo, SIGNAL_MAX_BYTES } from '../src/shared/socket-contract.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { type MeshClient, connectMesh, nextEvent } from './support/mesh-socket.ts';
import { type TcpProxy, tcpProxy } from './support/tcp-proxy.ts';

interface Server {
  app: FastifyInstance;
  base: string;
  port: number;
}

let db: TestDatabase;
const servers: Server[] = [];
const open: MeshClient[] = [];
const proxies: TcpProxy[] = [];

async function serve(overrides: Record<string, string> = {}): Promise<Server> {
  const app = await buildApp({
    env: testEnv({ SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '10000', ...overrides }),
    database: db.database,
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const server = { app, base, port: Number(new URL(base).port) };
  servers.push(server);
  return server;
}

beforeAll(async () => {
  db = await openTestDatabase('pglite');
});
afterEach(() => {
  for (const socket of open.splice(0)) socket.disconnect();
  for (const proxy of proxies.splice(0)) proxy.close();
});
afterAll(async () => {
  for (const server of servers) await server.app.close();
  await db?.cleanup();
});

let guests = 0;
async function guestCookie() {
  const user = await db.database.prisma.user.create({
    data: { kind: 'GUEST', displayName: `recovery-${++guests}` },
    select: { id: true },
  });
  const { token } = await createSession(db.database.prisma, user.id, { idleMs: 3_600_000, maxMs: 86_400_000 });
  return `mesh_session=${token}`;
}

async function joined(socket: MeshClient): Promise<PeerInfo> {
  const ack = (await socket.emitWithAck('room:join', { room: 'global' })) as Ack<{ self: PeerInfo }>;
  if (!ack.ok) throw new Error(`join refused: ${ack.error}`);
  return ack.data.self;
}

/**
 * A sender and a receiver in the global room, the receiver through a proxy that can drop its connection, and the
 * receiver holding an offset (it was sent a signal).
 */
async function pair(server: Server) {
  const proxy = await tcpProxy(server.port);
  proxies.push(proxy);
  const sender = await connectMesh(server.base, open, { cookie: await guestCookie() });
  const receiver = await connectMesh(proxy.url, open, {
    cookie: await guestCookie(),
    reconnection: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
  });
  const from = await joined(sender);
  const self = await joined(receiver);
  const first = nextEvent(receiver, 'signal', 5000);
  expect(await sender.emitWithAck('signal:relay', { room: 'global', to: self.peerId, data: 'first' })).toEqual({
    ok: true,
    data: null,
  });
  expect(await first).toMatchObject({ from: from.peerId, data: 'first' });
  /** Drops the receiver's connection; resolves once the server has seen it go (the sender hears peer:left). */
  const drop = async () => {
    const left = nextEvent(sender, 'peer:left', 5000, (event) => event.peerId === self.peerId);
    proxy.route(null);
    await left;
  };
  /** Lets the receiver reconnect; resolves once it has. */
  const restore = async () => {
    const connected = new Promise<void>((resolve) => receiver.once('connect', () => resolve()));
    proxy.route(server.port);
    await connected;
  };
  return { sender, receiver, self, drop, restore };
}

const heldBytes = (server: Server) => (server.app.mesh.adapter as unknown as { heldBytes: number }).heldBytes;

describe('connection-state recovery on one node', () => {
  it('gives a dropped connection back its peer id and the events it missed', async () => {
    const server = await serve();
    const { sender, receiver, self, drop, restore } = await pair(server);
    await drop();
    // While it is away someone joins: the receiver hears of it when it comes back.
    const newcomer = await connectMesh(server.base, open, { cookie: await guestCookie() });
    const arrived = await joined(newcomer);
    const missed = nextEvent(receiver, 'peer:joined', 5000, (event) => event.peer.peerId === arrived.peerId);
    await restore();
    expect(receiver.recovered).toBe(true);
    expect(await missed).toMatchObject({ room: 'global', peer: { peerId: arrived.peerId } });
    // Still in the room under the same peer id: signals reach it without a new join.
    const again = nextEvent(receiver, 'signal', 5000);
    expect(await sender.emitWithAck('signal:relay', { room: 'global', to: self.peerId, data: 'again' })).toEqual({
      ok: true,
      data: null,
    });
    expect(await again).toMatchObject({ data: 'again' });
  });

  it('keeps at most SOCKET_RECOVERY_BUFFER_MB of events: past it, a dropped connection comes back as a new one', async () => {
    const server = await serve({ SOCKET_RECOVERY_BUFFER_MB: '1' });
    const { sender, receiver, drop, restore } = await pair(server);
    await drop();
    // 1.5 MiB of signals between two others in the room, kept for their recovery, push the receiver's offset out.
    const other = await connectMesh(server.base, open, { cookie: await guestCookie() });
    const target = await joined(other);
    const big = 'x'.repeat(SIGNAL_MAX_BYTES - 100);
    for (let i = 0; i < Math.ceil((1.5 * 1024 * 1024) / big.length); i++) {
      expect(await sender.emitWithAck('signal:relay', { room: 'global', to: target.peerId, data: big })).toEqual({
        ok: true,
        data: null,
      });
    }
    expect(heldBytes(server)).toBeGreaterThan(0);
    expect(heldBytes(server)).toBeLessThanOrEqual(1024 * 1024);
    await restore();
    expect(receiver.recovered).toBe(false);
    // A new socket, in no room: the client joins afresh (src/shared/rtc/mesh-room.ts).
    expect(await receiver.emitWithAck('room:leave', { room: 'global' })).toMatchObject({
      ok: false,
      error: 'NOT_IN_ROOM',
    });
  });
});
