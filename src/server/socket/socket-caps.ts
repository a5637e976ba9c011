// Open /mesh sockets per session, per user and per client address, counted at the handshake on every node: each
// socket is in a Socket.IO room per key, so the Redis adapter can count the other nodes' sockets (docs/SECURITY.md).
import type { FastifyBaseLogger } from 'fastify';
import { type Dependency, unavailability } from '../dependencies/dependency.ts';
import {
  type MeshNamespace,
  type MeshSocket,
  acrossNodes,
  addressRoomKey,
  sessionKey,
  userKey,
} from './mesh.handlers.ts';

export interface SocketCaps {
  perSession: number;
  perUser: number;
  perAddress: number;
}

const KEYED = /^(session|user|address):/;

/** This node's sockets under `key` besides `socket`, those still in their handshake included. */
function localCount(mesh: MeshNamespace, key: string, socket: MeshSocket): number {
  const members = mesh.adapter.rooms.get(key);
  return (members?.size ?? 0) - (members?.has(socket.id) ? 1 : 0);
}

/**
 * Puts `socket` (authenticated: `data` is set) under its session, user and address keys, or returns why it may not
 * open: the message of a TOO_MANY_SOCKETS refusal. This node's sockets are counted and claimed synchronously, so
 * concurrent handshakes here never overshoot; the other nodes' are fetched after, and a handshake in progress on
 * another node at that moment is not seen (an overshoot of at most one socket per node).
 */
export async function claimSocket(
  mesh: MeshNamespace,
  socket: MeshSocket,
  {
    address,
    caps,
    log,
    redis,
  }: { address: string; caps: SocketCaps; log: Pick<FastifyBaseLogger, 'warn'>; redis: Dependency | null },
): Promise<string | null> {
  const limits = [
    { key: sessionKey(socket.data.sessionId), cap: caps.perSession, per: 'session' },
    { key: userKey(socket.data.userId), cap: caps.perUser, per: 'user' },
    { key: addressRoomKey(address), cap: caps.perAddress, per: 'address' },
  ];
  const refusal = (limit: (typeof limits)[number]) =>
    `At most ${limit.cap} sockets per ${limit.per} can be open at once; close another tab or connection first`;
  // A recovered socket comes back in the rooms it had: its session, user or address may have changed since.
  for (const room of socket.rooms) {
    if (KEYED.test(room) && !limits.some((limit) => limit.key === room)) void socket.leave(room);
  }
  const full = limits.find((limit) => localCount(mesh, limit.key, socket) >= limit.cap);
  if (full) return refusal(full);
  void socket.join(limits.map((limit) => limit.key));

  let remote: { id: string; rooms: Set<string> }[] = [];
  try {
    remote = (await acrossNodes(redis, () => mesh.in(limits.map((limit) => limit.key)).fetchSockets())).filter(
      (other) => other.id !== socket.id && !mesh.sockets.has(other.id),
    );
  } catch (error) {
    // A node that does not answer, or Redis down (not waited for, and logged once as an outage), is not counted: this
    // node's own caps still hold, and a socket needs no other node to connect.
    if (!unavailability(error)) log.warn({ err: error }, 'could not count the other nodes’ sockets');
  }
  const over = limits.find(
    (limit) =>
      localCount(mesh, limit.key, socket) + remote.filter((other) => other.rooms.has(limit.key)).length >= limit.cap,
  );
  if (!over) return null;
  for (const limit of limits) void socket.leave(limit.key);
  return refusal(over);
}
