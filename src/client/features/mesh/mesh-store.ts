// The room this tab is in, kept across screens (the chat can ask the room's peers while the Rooms screen is
// closed), and this device's part in the room's mesh inference: one MeshNode over the app's engine, behind the
// engine gate that gives this device's own chat the engine first.
import { useSyncExternalStore } from 'react';
import { EngineGate, type MeshEngine } from '../../../shared/mesh/engine-gate.ts';
import { DEFAULT_REQUESTER_OPTIONS } from '../../../shared/mesh/job-requester.ts';
import { MeshNode } from '../../../shared/mesh/mesh-node.ts';
import { enterRoom, serverApi } from '../../../shared/model-flow.ts';
import { MeshRoom as RtcMeshRoom } from '../../../shared/rtc/mesh-room.ts';
import type { PeerConnectionLike } from '../../../shared/rtc/peer-link.ts';
import { ensureSession } from '../../lib/session.ts';
import { meshSocket } from '../../lib/socket.ts';
import { trpc } from '../../lib/trpc.ts';
import { inferenceEngine } from '../../workers/inference.ts';
import { loadedModel, onModelStoreChange } from '../models/model-store.ts';

/** The app's room: the WebRTC mesh (rtc/) with this device's mesh node (mesh/) on it. */
export type MeshRoom = RtcMeshRoom<MeshNode>;

/** One engine for the tab: local chat takes the `local` lane, jobs served for peers the `mesh` lane. */
export const engineGate = new EngineGate();

const engine: MeshEngine = {
  loaded: () => {
    const active = loadedModel();
    return active ? { model: active.ref, backend: active.backend } : null;
  },
  generate: (messages, sampling, prefix) => inferenceEngine().generate(messages, sampling, prefix),
};

export const meshNode = new MeshNode(engine, engineGate, {
  // A browser cannot tell a discrete GPU from an integrated one reliably; WASM runs on the CPU.
  adapter: 'unknown',
  requesting: { ...DEFAULT_REQUESTER_OPTIONS },
});
// A model loaded or unloaded changes what this device offers its peers.
let lastRef: string | null = null;
onModelStoreChange(() => {
  const ref = loadedModel()?.ref.sha256 ?? null;
  if (ref === lastRef) return;
  lastRef = ref;
  meshNode.announce();
});

const createPeerConnection = (config: { iceServers: RTCIceServer[] }) =>
  new RTCPeerConnection(config) as unknown as PeerConnectionLike;

let room: MeshRoom | null = null;
let stopWatching: () => void = () => {};
let joining: Promise<MeshRoom> | null = null;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((listener) => listener());
const subscribe = (listener: () => void) => {
  listeners.add(listener);
  return () => listeners.delete(listener);
};

/** The room this tab is in, for React. */
export function useMeshRoom(): MeshRoom | null {
  return useSyncExternalStore(subscribe, () => room);
}

export function currentRoom(): MeshRoom | null {
  return room;
}

/** Joins `slug` (leaving any other room): a member first for custom rooms, then presence and links. */
export async function joinMeshRoom(
  slug: string,
  invite?: string,
  options: { guest?: boolean } = {},
): Promise<MeshRoom> {
  if (room?.room === slug) return room;
  if (joining) await joining.catch(() => undefined);
  if (room?.room === slug) return room;
  joining = (async () => {
    await leaveMeshRoom();
    // The session first (a guest made on first use, unless `guest` is false), then the socket and the room's ICE
    // servers together: one after the other they were four round trips before the join, each waiting on a server
    // busy with every other page's join (bench/README.md, "Eight pages joining at once").
    const me = await ensureSession(options);
    const [socket, iceServers] = await Promise.all([
      meshSocket({ guest: false }),
      enterRoom(serverApi(trpc), slug, me.kind, invite),
    ]);
    // Sharing is off in every room until the person turns it on there.
    meshNode.setSharing(false);
    // A User Timing mark when the join is acknowledged: performance tools (and bench/signaling.ts) time the mesh from it.
    // Frame channels beside each peer channel: this tab can ask peers hosting stages for a pipeline job.
    const joined = new RtcMeshRoom(socket, slug, iceServers, createPeerConnection, meshNode, {
      joined: () => performance.mark('mesh:joined'),
      frameChannels: true,
    });
    room = joined;
    emit();
    // The server ends this socket when the session changes (sign-up, log-out): come back with the new one.
    const onDisconnect = (reason: string) => {
      if (reason !== 'io server disconnect' || room !== joined) return;
      room = null;
      emit();
      // Its links go too: the other side hears this peer id leave and will meet the new one.
      void joined.leave().finally(() => rejoin(slug, invite));
    };
    socket.on('disconnect', onDisconnect);
    stopWatching = () => socket.off('disconnect', onDisconnect);
    await joined.join();
    return joined;
  })();
  try {
    return await joining;
  } finally {
    joining = null;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Back into the room after the server ended this tab's socket because its session changed. The socket can close
 * before the new session's cookie has arrived, so wait for a session to exist; after a log-out there is none, and
 * the room is left (no new guest is made behind the person's back).
 */
async function rejoin(slug: string, invite: string | undefined): Promise<void> {
  for (const wait of [200, 500, 1000, 2000, 4000, 8000]) {
    await sleep(wait);
    if (room || joining) return;
    if (!(await ensureSession({ guest: false }).catch(() => null))) continue;
    try {
      await joinMeshRoom(slug, invite, { guest: false });
      return;
    } catch {
      // The old cookie was still in use: try again.
    }
  }
}

export async function leaveMeshRoom(): Promise<void> {
  const leaving = room;
  room = null;
  stopWatching();
  stopWatching = () => {};
  emit();
  meshNode.setSharing(false);
  await leaving?.leave();
}

/** Whether this device runs jobs for the room's peers ("Share my compute"). */
export function setSharing(sharing: boolean): void {
  meshNode.setSharing(sharing);
}

/** The share of this device's mesh answers re-run on another peer to check them (0 to 1). */
export function setSpotCheckRate(rate: number): void {
  meshNode.requester.setSpotCheckRate(rate);
}
