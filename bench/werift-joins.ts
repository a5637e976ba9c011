// Eight peers joining a room at once, as headless werift peers (no Chromium, so two cores measure the server and
// the signaling order rather than eight browsers): per peer, the time from its join ack to a data channel open with
// every other peer. The rooms and links are the app's own (src/shared/rtc/mesh-room.ts); the mesh on top is a stub
// that only counts channels.
import { RTCPeerConnection } from 'werift';
import { type MeshSocket, MeshRoom, type RoomMesh } from '../src/shared/rtc/mesh-room.ts';
import type { LinkTimeline, PeerConnectionLike } from '../src/shared/rtc/peer-link.ts';
import { connectedGuestSockets } from './relay-load.ts';

const stubMesh = (): RoomMesh => ({
  capabilities: () => ({ backend: null, adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: false }),
  addPeer: () => ({ receive: () => {}, droppedTotal: () => 0 }),
  removePeer: () => {},
  peer: () => undefined,
  subscribe: () => () => {},
});

const GIVE_UP_MS = 30_000;

/** A link's phases, in ms, from the side that offers (the impolite one) and, for the answer, the other side. */
export const PHASES = [
  'join ack to link made',
  'making the offer',
  'offer sent to answer back',
  '  of which the other side answering',
  'answer to channel open (ICE, DTLS, SCTP)',
  '  of which answer to ICE connected',
  '  of which ICE connected to channel open (DTLS, SCTP)',
] as const;
export type Phases = Record<(typeof PHASES)[number], number[]>;

/** ICE restarts and re-sent offers the links' watchdogs made (PeerLink.restarts), all links of a round together. */
const restartsOf = (rooms: { room: MeshRoom }[]) =>
  rooms.reduce((sum, { room }) => sum + room.timelines().reduce((n, link) => n + link.restarts, 0), 0);

function phasesOf(rooms: { room: MeshRoom; joinedAt: number }[]): Phases {
  const phases = Object.fromEntries(PHASES.map((phase) => [phase, [] as number[]])) as Phases;
  const polite = new Map<string, LinkTimeline>();
  for (const { room } of rooms) {
    const self = room.getSnapshot().self?.peerId ?? '';
    for (const link of room.timelines()) if (link.polite) polite.set(`${link.peerId}>${self}`, link.timeline);
  }
  for (const { room, joinedAt } of rooms) {
    const self = room.getSnapshot().self?.peerId ?? '';
    for (const { peerId, polite: isPolite, timeline: t } of room.timelines()) {
      if (isPolite || t.offerSent === undefined || t.answerReceived === undefined) continue;
      const other = polite.get(`${self}>${peerId}`);
      phases['join ack to link made'].push(t.created - joinedAt);
      phases['making the offer'].push(t.offerSent - t.created);
      phases['offer sent to answer back'].push(t.answerReceived - t.offerSent);
      if (other?.answerSent !== undefined && other.offerReceived !== undefined)
        phases['  of which the other side answering'].push(other.answerSent - other.offerReceived);
      // Not via `connected`: werift may report the connection connected after the channel opened.
      if (t.open !== undefined) phases['answer to channel open (ICE, DTLS, SCTP)'].push(t.open - t.answerReceived);
      if (t.iceConnected !== undefined) {
        phases['  of which answer to ICE connected'].push(t.iceConnected - t.answerReceived);
        if (t.open !== undefined)
          phases['  of which ICE connected to channel open (DTLS, SCTP)'].push(t.open - t.iceConnected);
      }
    }
  }
  return phases;
}

/**
 * One round: `count` werift peers join `room` together; resolves with each one's join-ack-to-all-open time (ms),
 * Infinity for a peer still missing a channel after 30 s, and every link's phases.
 */
export async function weriftJoinRound(
  url: string,
  count: number,
  room = 'global',
): Promise<{ durations: number[]; phases: Phases; restarts: number }> {
  const sockets = (await connectedGuestSockets(url, count)) as MeshSocket[];
  const createPeerConnection = (config: { iceServers: { urls: string | string[] }[] }) =>
    new RTCPeerConnection({ iceServers: config.iceServers }) as unknown as PeerConnectionLike;
  const rooms: { room: MeshRoom; joinedAt: number }[] = [];
  try {
    const durations = await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<number>((resolve, reject) => {
            const entry = { room: null as unknown as MeshRoom, joinedAt: 0 };
            const meshRoom = new MeshRoom(socket, room, [], createPeerConnection, stubMesh(), {
              joined: () => (entry.joinedAt = performance.now()),
            });
            entry.room = meshRoom;
            rooms.push(entry);
            // A peer whose channels are not all open by then counts as never (Infinity): the figures say how many.
            const timer = setTimeout(() => resolve(Infinity), GIVE_UP_MS);
            const check = () => {
              const open = meshRoom.getSnapshot().peers.filter((peer) => peer.link.channel === 'open').length;
              if (entry.joinedAt > 0 && open >= count - 1) {
                clearTimeout(timer);
                unsubscribe();
                resolve(performance.now() - entry.joinedAt);
              }
            };
            const unsubscribe = meshRoom.subscribe(check);
            meshRoom.join().then(check, reject);
          }),
      ),
    );
    return { durations, phases: phasesOf(rooms), restarts: restartsOf(rooms) };
  } finally {
    await Promise.all(rooms.map(({ room: meshRoom }) => meshRoom.leave().catch(() => undefined)));
    sockets.forEach((socket) => socket.disconnect());
  }
}
