// What GET /v1/models lists from the mesh: the catalogue models that peers share now in the rooms a key's account
// can ask (the global room and the rooms it has joined), and those a chain of stage peers there can run as a
// pipeline (docs/pipeline.md, "Asking from /v1"), read from the signaling layer's presence (every node's sockets,
// through the Socket.IO adapter), so listing joins no room.
import { type StageHostView, stageChain } from '../../shared/pipeline/chain.ts';
import type { PrismaClient } from '../db/client.ts';
import { type MeshNamespace, roomKey } from '../socket/mesh.handlers.ts';
import { GLOBAL_ROOM } from '../services/room.ts';

/** Rooms a key's account may name in X-Mesh-Room: the global room and the ones it joined (at most `limit`). */
export async function roomsOf(db: PrismaClient, userId: string, limit: number): Promise<string[]> {
  const joined = await db.roomMember.findMany({
    where: { userId },
    select: { room: { select: { slug: true } } },
    orderBy: { joinedAt: 'desc' },
    take: limit,
  });
  return [GLOBAL_ROOM, ...joined.map((member) => member.room.slug).filter((slug) => slug !== GLOBAL_ROOM)];
}

type PresentSockets = Awaited<ReturnType<ReturnType<MeshNamespace['in']>['fetchSockets']>>;

/** The sockets in any of `rooms` now: one ask of the signaling layer (every node's, through the adapter). */
async function presence(mesh: MeshNamespace, rooms: readonly string[]): Promise<PresentSockets> {
  return rooms.length === 0 ? [] : mesh.in(rooms.map(roomKey)).fetchSockets();
}

/**
 * What GET /v1/models lists from the mesh, from one ask of the presence: the models shared whole in `rooms`
 * (sharedModels) and those a chain of stage peers there can run (pipelineModels).
 */
export async function roomModels(
  mesh: MeshNamespace,
  rooms: readonly string[],
): Promise<{ shared: Map<string, string[]>; staged: Map<string, string[]> }> {
  const sockets = await presence(mesh, rooms);
  return { shared: sharedIn(sockets, rooms), staged: stagedIn(sockets, rooms) };
}

/** Model ids shared (sharing on) in any of `rooms` now, each with the rooms it is shared in. */
export async function sharedModels(mesh: MeshNamespace, rooms: readonly string[]): Promise<Map<string, string[]>> {
  return sharedIn(await presence(mesh, rooms), rooms);
}

function sharedIn(sockets: PresentSockets, rooms: readonly string[]): Map<string, string[]> {
  const shared = new Map<string, string[]>();
  for (const socket of sockets) {
    for (const room of rooms) {
      const capabilities = socket.data.capabilities[room];
      if (!capabilities?.sharing || !socket.rooms.has(roomKey(room))) continue;
      for (const model of capabilities.models) {
        const where = shared.get(model.id) ?? [];
        if (!where.includes(room)) where.push(room);
        shared.set(model.id, where);
      }
    }
  }
  return shared;
}

/**
 * Model ids whose every layer a chain of sharing stage peers in one of `rooms` holds or can load now (the chain the
 * server's member would find there, stageChain), each with the rooms where one does. Presence has no round trips,
 * so the chain may differ from the member's; it covers the layers all the same.
 */
function stagedIn(sockets: PresentSockets, rooms: readonly string[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const room of rooms) {
    const hosts = new Map<string, StageHostView[]>();
    for (const socket of sockets) {
      const pipeline = socket.data.capabilities[room]?.pipeline;
      if (!pipeline || !socket.data.capabilities[room]?.sharing || !socket.rooms.has(roomKey(room))) continue;
      hosts.set(pipeline.model, [
        ...(hosts.get(pipeline.model) ?? []),
        { peerId: socket.data.peerId, rttMs: null, pipeline },
      ]);
    }
    for (const [model, views] of hosts) {
      if (!stageChain(views)) continue;
      found.set(model, [...(found.get(model) ?? []), room]);
    }
  }
  return found;
}
