// What the Rooms screen shows of the room this tab is in, as one immutable snapshot: the mesh (members, links,
// round-trip times) with this device's part in it (sharing, queue, answers served, the check rate) and what this
// device knows of each peer (answers it served here, whether it is excluded). The screen renders from it alone and
// changes state through the actions in mesh-store.ts, never by writing into the node.
import { useSyncExternalStore } from 'react';
import type { MeshPeer, MeshSnapshot } from '../../../shared/rtc/mesh-room.ts';
import type { MeshRoom } from './mesh-store.ts';

export interface RoomPeerView extends MeshPeer {
  /** Why this device no longer asks the peer's user for answers (a failed spot check), if it does not. */
  excluded: string | undefined;
  /** Answers the peer took part in for this device since it joined. */
  servedMe: number;
}

export interface RoomView {
  room: string;
  self: MeshSnapshot['self'];
  error: string | null;
  peers: RoomPeerView[];
  /** This device's part. */
  own: { sharing: boolean; queue: number; served: number; spotCheckRate: number };
}

/** The view of `room` now; the room's snapshot changes on every node change, so the view is made once per snapshot. */
const views = new WeakMap<MeshSnapshot, RoomView>();

export function roomView(room: MeshRoom): RoomView {
  const snapshot = room.getSnapshot();
  let view = views.get(snapshot);
  if (!view) {
    const { node } = room;
    const own = node.capabilities();
    view = {
      room: snapshot.room,
      self: snapshot.self,
      error: snapshot.error,
      peers: snapshot.peers.map((peer) => ({
        ...peer,
        excluded: node.requester.exclusion(peer.userId),
        servedMe: node.requester.servedCount(peer.peerId),
      })),
      own: {
        sharing: own.sharing,
        queue: own.queue,
        served: node.server.served.filter((job) => job.outcome === 'done').length,
        spotCheckRate: node.requester.spotCheckRate,
      },
    };
    views.set(snapshot, view);
  }
  return view;
}

export function useRoomView(room: MeshRoom): RoomView {
  return useSyncExternalStore(room.subscribe, () => roomView(room));
}
