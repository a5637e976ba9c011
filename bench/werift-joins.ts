// Eight peers joining a room at once, as headless werift peers (no Chromium, so two cores measure the server and
// the signaling order rather than eight browsers): per peer, the time from its join ack to a data channel open with
// every other peer. The rooms and links are the app's own (src/shared/rtc/mesh-room.ts); the mesh on top is a stub
// that only counts channels.
import { RTCPeerConnection } from 'werift';
import { io } from 'socket.io-client';
import { type MeshSocket, MeshRoom, type RoomMesh } from '../src/shared/rtc/mesh-room.ts';
import type { PeerConnectionLike } from '../src/shared/rtc/peer-link.ts';
import { MESH_NAMESPACE } from '../src/shared/socket-contract.ts';
import { guestCookie } from '../tests/support/server-process.ts';

const stubMesh = (): RoomMesh => ({
  capabilities: () => ({ backend: null, adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: false }),
  addPeer: () => ({ receive: () => {}, droppedTotal: () => 0 }),
  removePeer: () => {},
  peer: () => undefined,
  subscribe: () => () => {},
});

const GIVE_UP_MS = 30_000;

/**
 * One round: `count` werift peers join `room` together; resolves with each one's join-ack-to-all-open time (ms),
 * Infinity for a peer still missing a channel after 30 s.
 */
export async function weriftJoinRound(url: string, count: number, room = 'global'): Promise<number[]> {
  const sockets = await Promise.all(
    Array.from({ length: count }, async () => {
      const socket: MeshSocket = io(`${url}${MESH_NAMESPACE}`, {
        transports: ['websocket'],
        extraHeaders: { cookie: await guestCookie(url) },
        forceNew: true,
      });
      await new Promise<void>((resolve, reject) =>
        socket.once('connect', () => resolve()).once('connect_error', reject),
      );
      return socket;
    }),
  );
  const createPeerConnection = (config: { iceServers: { urls: string | string[] }[] }) =>
    new RTCPeerConnection({ iceServers: config.iceServers }) as unknown as PeerConnectionLike;
  const rooms: MeshRoom[] = [];
  try {
    return await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<number>((resolve, reject) => {
            let joinedAt = 0;
            const meshRoom = new MeshRoom(socket, room, [], createPeerConnection, stubMesh(), {
              joined: () => (joinedAt = performance.now()),
            });
            rooms.push(meshRoom);
            // A peer whose channels are not all open by then counts as never (Infinity): the figures say how many.
            const timer = setTimeout(() => resolve(Infinity), GIVE_UP_MS);
            const check = () => {
              const open = meshRoom.getSnapshot().peers.filter((peer) => peer.link.channel === 'open').length;
              if (joinedAt > 0 && open >= count - 1) {
                clearTimeout(timer);
                unsubscribe();
                resolve(performance.now() - joinedAt);
              }
            };
            const unsubscribe = meshRoom.subscribe(check);
            meshRoom.join().then(check, reject);
          }),
      ),
    );
  } finally {
    await Promise.all(rooms.map((meshRoom) => meshRoom.leave().catch(() => undefined)));
    sockets.forEach((socket) => socket.disconnect());
  }
}
