// The `/mesh` namespace: presence in rooms and WebRTC signaling. Every payload is schema-checked, every event
// rate-limited per socket, and a signal reaches only its named target, in the same room, stamped with the
// sender's peer id by the server.
// Past 300 lines because every event of the namespace is here, side by side with its check and its limit, so a
// reader sees the whole of what a socket may do in one place.
import type { FastifyBaseLogger } from 'fastify';
import type { Namespace, Socket } from 'socket.io';
import type { z } from 'zod';
import {
  type Ack,
  type ClientToServerEvents,
  type InterServerEvents,
  NO_CAPABILITIES,
  PeerUpdateSchema,
  type PeerInfo,
  RoomJoinSchema,
  RoomLeaveSchema,
  SIGNAL_MAX_BYTES,
  type ServerToClientEvents,
  SignalRelaySchema,
  type SocketData,
  type SocketErrorCode,
} from '../../shared/socket-contract.ts';
import type { PrismaClient } from '../db/client.ts';
import { type Dependency, unavailability } from '../dependencies/dependency.ts';
import { ACROSS_NODES_TIMEOUT_MS } from '../dependencies/redis.ts';
import { GLOBAL_ROOM, isMember, roomBySlug } from '../services/room.ts';
import { hiddenAddedModels } from '../services/user-models.ts';
import type { OutageBacklog } from './outage-backlog.ts';
import { type SeatRefusal, seatRefusal } from './room-seats.ts';

export type MeshNamespace = Namespace<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type MeshSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export const roomKey = (slug: string) => `room:${slug}`;
export const peerKey = (peerId: string) => `peer:${peerId}`;
export const sessionKey = (sessionId: string) => `session:${sessionId}`;
export const userKey = (userId: string) => `user:${userId}`;
/** A client address as src/server/socket/handshake-guard.ts keys it (an IPv4 address or an IPv6 /64). */
export const addressRoomKey = (address: string) => `address:${address}`;

/**
 * Work that asks the other nodes through Redis (fetchSockets): refused at once while Redis is down, and failed as soon
 * as it goes down meanwhile, never left waiting in the Redis client's offline queue (src/server/dependencies/).
 * Without Redis (one node, in-memory adapter) it never waits on anything.
 */
export function acrossNodes<T>(redis: Dependency | null, work: () => Promise<T>): Promise<T> {
  return redis ? redis.guard(work, ACROSS_NODES_TIMEOUT_MS) : work();
}

/**
 * The socket of `peerId`: on this node straight from the adapter's rooms (no round trip), else asked of every node
 * (Redis adapter). A remote socket is a copy with `rooms`, `data` and `emit`, which is all the callers use.
 */
async function peerSocket(mesh: MeshNamespace, peerId: string, redis: Dependency | null) {
  const local = mesh.adapter.rooms.get(peerKey(peerId));
  for (const id of local ?? []) {
    const socket = mesh.sockets.get(id);
    if (socket) return socket;
  }
  const [remote] = await acrossNodes(redis, () => mesh.in(peerKey(peerId)).fetchSockets());
  return remote;
}

/** The user behind `peerId` if that peer is in `room` now (on any node), and whether it shares its compute there. */
export async function findPeer(
  mesh: MeshNamespace,
  room: string,
  peerId: string,
  redis: Dependency | null,
): Promise<{ userId: string; displayName: string; sharing: boolean } | null> {
  const socket = await peerSocket(mesh, peerId, redis);
  if (!socket?.rooms.has(roomKey(room))) return null;
  return {
    userId: socket.data.userId,
    displayName: socket.data.displayName,
    sharing: socket.data.capabilities[room]?.sharing ?? false,
  };
}

export interface MeshOptions {
  db: PrismaClient;
  /** Joins need the database (membership, the seat count's lock) and, with several nodes, Redis (the count itself). */
  database: Dependency;
  redis: Dependency | null;
  /** With Redis: presence that changed while it was down, told to the other nodes once it is back. */
  backlog: OutageBacklog | null;
  /** Events per socket per second (a burst of this size, refilled every second). */
  eventsPerSecond: number;
  /** Sockets of one person in one room (SOCKETS_PER_USER_PER_ROOM); together they take one seat. */
  socketsPerUserPerRoom: number;
  log: Pick<FastifyBaseLogger, 'error'>;
}

const fail = (error: SocketErrorCode, message: string) => ({ ok: false as const, error, message });
const unavailable = (error: { message: string; retryAfterSeconds: number }) => ({
  ...fail('UNAVAILABLE', error.message),
  retryInMs: error.retryAfterSeconds * 1000,
});

export function peerInfo(data: SocketData, room: string): PeerInfo {
  return {
    peerId: data.peerId,
    userId: data.userId,
    displayName: data.displayName,
    capabilities: data.capabilities[room] ?? NO_CAPABILITIES,
  };
}

/** Whether this user may be in the room: everyone in the global room, members elsewhere. */
async function mayJoin(db: PrismaClient, data: SocketData, slug: string) {
  const room = await roomBySlug(db, slug);
  if (!room) return { room: null, error: fail('NOT_FOUND', `No room ${slug}`) };
  if (slug !== GLOBAL_ROOM && (data.kind !== 'ACCOUNT' || !(await isMember(db, room.id, data.userId)))) {
    return { room: null, error: fail('FORBIDDEN', 'Join this room first (room.join); custom rooms need an account') };
  }
  return { room, error: null };
}

/**
 * Seats `socket` in the room if its capacity, counted in people, allows (see room-seats.ts), one seat decision per
 * room at a time on every node that shares this database: the room's row is locked for the count and the join.
 * Without it, sockets joining at once (on one node, or on several through Redis, where the count is a round trip)
 * each counted the others out and all got in. `enter` is what taking the seat means (a recovered socket already
 * sits there: nothing).
 */
async function takeSeat(
  db: PrismaClient,
  room: { id: string; capacity: number },
  seat: {
    socket: MeshSocket;
    present: () => Promise<{ id: string; data: SocketData }[]>;
    perUser: number;
    enter: () => void | Promise<void>;
  },
): Promise<SeatRefusal | null> {
  return db.$transaction(
    async (tx) => {
      await tx.$queryRaw`SELECT id FROM "Room" WHERE id = ${room.id}::uuid FOR UPDATE`;
      const others = (await seat.present())
        .filter((other) => other.id !== seat.socket.id)
        .map((other) => other.data.userId);
      const refusal = seatRefusal(others, seat.socket.data.userId, { capacity: room.capacity, perUser: seat.perUser });
      if (refusal === null) await seat.enter();
      return refusal;
    },
    // Joins of one room wait for each other; a count across nodes takes up to the adapter's request timeout.
    { maxWait: 15_000, timeout: 20_000 },
  );
}

function seatFailure(refusal: SeatRefusal, room: { capacity: number }, perUser: number) {
  return refusal === 'ROOM_FULL'
    ? fail('ROOM_FULL', `This room holds ${room.capacity} people at once`)
    : fail('TOO_MANY_SOCKETS', `At most ${perUser} of your tabs or connections can be in one room`);
}

export function registerMesh(mesh: MeshNamespace, options: MeshOptions): void {
  mesh.on('connection', (socket) => {
    void socket.join(peerKey(socket.data.peerId));
    const perUser = options.socketsPerUserPerRoom;
    /** The sockets in `key` on every node. */
    const present = (key: string) => acrossNodes(options.redis, () => mesh.in(key).fetchSockets());
    /** The others in room `key`, for presence: with Redis down, this node's now and the rest from the backlog later. */
    const others = (key: string) => (options.backlog?.holding ? socket.to(key).local : socket.to(key));
    const left = (slug: string) => {
      others(roomKey(slug)).emit('peer:left', { room: slug, peerId: socket.data.peerId });
      options.backlog?.left(slug, socket.data.peerId);
    };

    /** Model ids this socket's account was found to be allowed to name (checked once each). */
    const allowedModels = new Set<string>();
    /**
     * Why the socket may not name these models, or null: a model another account added by repo id is not its to share
     * (its account's catalogue does not show it; README "OpenAI-compatible API": sharing one offers it to the room).
     */
    async function modelRefusal(capabilities: { models: { id: string }[] }) {
      const fresh = [...new Set(capabilities.models.map((model) => model.id))].filter((id) => !allowedModels.has(id));
      if (fresh.length === 0) return null;
      const hidden = await hiddenAddedModels(options.db, socket.data.userId, fresh);
      if (hidden.length > 0)
        return fail(
          'FORBIDDEN',
          `${hidden.join(', ')} is not in your catalogue: another account added it by repo id, and only what your catalogue shows can be shared`,
        );
      for (const id of fresh) allowedModels.add(id);
      return null;
    }

    /** Why the socket may not stay in the room it was in before, or null. */
    async function seatLost(slug: string, key: string) {
      const { room, error } = await mayJoin(options.db, socket.data, slug);
      if (error || !room) return error ?? fail('NOT_FOUND', `No room ${slug}`);
      const refusal = await takeSeat(options.db, room, {
        socket,
        present: () => present(key),
        perUser,
        enter: () => {},
      });
      return refusal && seatFailure(refusal, room, perUser);
    }

    /**
     * Recovered sockets get their rooms back without a join: the membership may have ended meanwhile, and the room
     * may have filled up (its seat was free while it was away). Its disconnect told the room it had left.
     */
    async function recheckRecovered() {
      for (const key of [...socket.rooms].filter((k) => k.startsWith('room:'))) {
        const slug = key.slice('room:'.length);
        const lost = await seatLost(slug, key).catch((error: unknown) => {
          // Unchecked is not allowed back in; a dependency that is down says so (and when to join again) instead.
          const down = unavailability(error);
          if (down) return unavailable(down);
          options.log.error({ err: error }, 'recovered socket check failed');
          return fail('INTERNAL', 'The server could not check this room again; join it again');
        });
        if (lost) {
          await socket.leave(key);
          // Again, in case its old node went down before telling them.
          socket.to(key).emit('peer:left', { room: slug, peerId: socket.data.peerId });
          socket.emit('room:kicked', { room: slug, error: lost.error, message: lost.message });
        } else {
          socket.to(key).emit('peer:joined', { room: slug, peer: peerInfo(socket.data, slug) });
        }
      }
    }

    // This socket's events are handled one at a time, in the order they came: a signal never overtakes the one
    // sent before it (an ICE candidate ahead of its offer is refused by the browser), whatever each one awaits.
    // A recovered socket's rooms are checked before its first event.
    /**
     * SOCKET_EVENTS_PER_SECOND as a window of one second from the first event after the last window ended, refused
     * events counted too (as rate-limiter-flexible's memory limiter counted them, which this replaces): a counter in
     * the socket's closure, with no promise, record or timer per event (issue 16, bench/README.md).
     */
    let windowEnd = 0;
    let spent = 0;
    /** Zero if this event is within the budget, else the ms until the next window. */
    const overBudget = () => {
      const now = Date.now();
      if (now >= windowEnd) {
        windowEnd = now + 1000;
        spent = 0;
      }
      spent++;
      return spent > options.eventsPerSecond ? windowEnd - now : 0;
    };

    let turn: Promise<void> = socket.recovered
      ? recheckRecovered().catch((error: unknown) => options.log.error({ err: error }, 'recovered socket check failed'))
      : Promise.resolve();

    /**
     * Rate limit and schema check around every handler; a missing ack is tolerated, not trusted. The listener takes
     * `unknown`, not the contract's payload type: a client sends what it likes, and only `schema` makes it typed. (A
     * listener of unknowns fits every event of the contract; `name` widens the generic event so TypeScript sees that.)
     */
    function on<E extends keyof ClientToServerEvents, S extends z.ZodType, T>(
      event: E,
      schema: S,
      handle: (payload: z.output<S>) => Promise<Ack<T>>,
    ) {
      const name: keyof ClientToServerEvents = event;
      socket.on(name, (payload: unknown, ack: unknown) => {
        const reply = typeof ack === 'function' ? (ack as (result: Ack<T>) => void) : () => {};
        turn = turn
          .then(async () => {
            const retryInMs = overBudget();
            if (retryInMs > 0) {
              reply({ ...fail('RATE_LIMITED', `At most ${options.eventsPerSecond} messages a second`), retryInMs });
              return;
            }
            const parsed = schema.safeParse(payload);
            if (!parsed.success) {
              reply(
                fail(
                  'INVALID_PAYLOAD',
                  parsed.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; '),
                ),
              );
              return;
            }
            reply(await handle(parsed.data));
          })
          .catch((error: unknown) => {
            // A dependency that is down is logged once by the dependencies plugin, not once per event.
            const down = unavailability(error);
            if (down) return reply(unavailable(down));
            options.log.error({ err: error, event }, 'mesh event failed');
            reply(fail('INTERNAL', 'The server could not handle this event; try again'));
          });
      });
    }

    on('room:join', RoomJoinSchema, async ({ room: slug, capabilities }) => {
      // Both are needed (the seat count is a database lock around a count on every node): refused at once while either
      // is down, rather than after waiting out a connection or a count that cannot come.
      options.database.assertUp();
      options.redis?.assertUp();
      const { room, error } = await mayJoin(options.db, socket.data, slug);
      if (error || !room) return error ?? fail('NOT_FOUND', `No room ${slug}`);
      const refused = await modelRefusal(capabilities);
      if (refused) return refused;
      const key = roomKey(slug);
      const already = socket.rooms.has(key);
      const enter = () => {
        socket.data.capabilities = { ...socket.data.capabilities, [slug]: capabilities };
        return socket.join(key);
      };
      if (already) await enter();
      else {
        const refusal = await takeSeat(options.db, room, { socket, present: () => present(key), perUser, enter }).catch(
          async (error: unknown) => {
            // Seated, then the commit failed (the database went away): the failed join is undone.
            if (socket.rooms.has(key)) await socket.leave(key);
            throw error;
          },
        );
        if (refusal) return seatFailure(refusal, room, perUser);
      }
      const self = peerInfo(socket.data, slug);
      socket.to(key).emit(already ? 'peer:updated' : 'peer:joined', { room: slug, peer: self });
      // Listed after joining: of two peers joining at once, each then hears of the other by this list or by
      // peer:joined (a list taken before joining missed a peer that joined in between, and neither heard).
      const everyone = await present(key).catch(async (listing: unknown) => {
        // A join answered as failed leaves nobody in the room: undone, and the room told so.
        if (!already) {
          await socket.leave(key);
          socket.to(key).emit('peer:left', { room: slug, peerId: socket.data.peerId });
        }
        throw listing;
      });
      const peers = everyone.filter((s) => s.id !== socket.id).map((s) => peerInfo(s.data, slug));
      return { ok: true, data: { room: slug, self, peers } };
    });

    on('room:leave', RoomLeaveSchema, async ({ room: slug }) => {
      const key = roomKey(slug);
      if (!socket.rooms.has(key)) return fail('NOT_IN_ROOM', `Not in room ${slug}`);
      await socket.leave(key);
      left(slug);
      return { ok: true, data: null };
    });

    on('peer:update', PeerUpdateSchema, async ({ room: slug, capabilities }) => {
      const key = roomKey(slug);
      if (!socket.rooms.has(key)) return fail('NOT_IN_ROOM', `Not in room ${slug}`);
      const refused = await modelRefusal(capabilities);
      if (refused) return refused;
      socket.data.capabilities = { ...socket.data.capabilities, [slug]: capabilities };
      others(key).emit('peer:updated', { room: slug, peer: peerInfo(socket.data, slug) });
      options.backlog?.updated(slug, socket.data.peerId, socket.id);
      return { ok: true, data: null };
    });

    on('signal:relay', SignalRelaySchema, async ({ room: slug, to, data }) => {
      const key = roomKey(slug);
      if (!socket.rooms.has(key)) return fail('NOT_IN_ROOM', `Not in room ${slug}`);
      if (Buffer.byteLength(JSON.stringify(data ?? null)) > SIGNAL_MAX_BYTES)
        return fail('TOO_LARGE', `A signal is at most ${SIGNAL_MAX_BYTES} bytes`);
      // The target by its own peer room, then checked to be in this room: signals never cross rooms.
      const target = await peerSocket(mesh, to, options.redis);
      if (!target || !target.rooms.has(key)) return fail('PEER_NOT_FOUND', `No peer ${to} in room ${slug}`);
      const signal = { room: slug, from: socket.data.peerId, data };
      // Through the Redis adapter even a socket's own emit waits for its place in the stream (so a recovered connection
      // can replay it): with Redis down, a peer on this node gets it at once instead, without the replay.
      if (options.redis && !options.redis.up && mesh.sockets.get(target.id) === target)
        mesh.local.to(target.id).emit('signal', signal);
      else target.emit('signal', signal);
      return { ok: true, data: null };
    });

    socket.on('disconnecting', () => {
      for (const key of socket.rooms) {
        if (key.startsWith('room:')) left(key.slice('room:'.length));
      }
    });
  });
}
