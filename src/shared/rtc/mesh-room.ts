// A room's full mesh: a PeerLink to every other member, made as they join and closed as they leave, with SDP
// and ICE relayed through the server's `/mesh` namespace; each open data channel joins the MeshNode (mesh
// inference, RTT). The browser's room screen reads it as an external store; the headless peer drives it too.
// Past 300 lines: joining, rejoining after a lost socket and the links' lifecycle (with the pipeline frame channel
// beside each peer channel) share the member list; the
// signal outbox (signal-outbox.ts) and presence publishing (presence.ts) are their own modules.
import type { Socket } from 'socket.io-client';
import type { PeerCapabilities } from '../peer-protocol.ts';
import type { Wire } from '../wire.ts';
import {
  type Capabilities,
  type ClientToServerEvents,
  LinkSignalSchema,
  type PeerInfo,
  type ServerToClientEvents,
} from '../socket-contract.ts';
import {
  type IceServer,
  type LinkSignal,
  type LinkState,
  type LinkTimeline,
  type PeerConnectionFactory,
  PeerLink,
} from './peer-link.ts';
import { ChangeListeners } from '../change-listeners.ts';
import { PresencePublisher } from './presence.ts';
import { SignalOutbox } from './signal-outbox.ts';
import type { FrameWire } from '../pipeline/frame-wire.ts';
import { openFrameChannel } from '../pipeline/channel-wire.ts';

export type MeshSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

const JOIN_TIMEOUT_MS = 10_000;

export interface MeshPeer extends PeerInfo {
  link: LinkState;
  /** Round-trip time over the data channel (ping/pong), once measured. */
  rttMs: number | null;
  /** What the peer said of itself over the data channel (`hello`). */
  mesh: PeerCapabilities | null;
  /** Messages from it dropped as oversize, malformed or invalid. */
  dropped: number;
}

export interface MeshSnapshot {
  room: string;
  self: PeerInfo | null;
  peers: MeshPeer[];
  error: string | null;
}

/** A channel the mesh made for a peer's open data channel: what arrives on the wire goes to `receive`. */
export interface RoomChannel {
  receive(data: unknown): void;
  droppedTotal(): number;
}

/**
 * What a room needs of the mesh on top of it (mesh/mesh-node.ts is the one there is): open channels join it, its
 * capabilities are this device's presence, and its changes re-render the room.
 */
export interface RoomMesh {
  capabilities(): PeerCapabilities;
  addPeer(peerId: string, name: string, wire: Wire, userId: string): RoomChannel;
  removePeer(peerId: string, channel?: RoomChannel): void;
  peer(
    peerId: string,
  ): { rttMs: number | null; capabilities: PeerCapabilities | null; channel: RoomChannel } | undefined;
  subscribe(listener: () => void): () => void;
  /** The pipeline frame channel to `peerId` opened (only with MeshRoomHooks.frameChannels). */
  addFrameWire?(peerId: string, wire: FrameWire): void;
}

export interface MeshRoomHooks {
  /** The server acknowledged the join (benchmarks time from here to every channel open). */
  joined?: () => void;
  /** Open the pipeline's frame channel beside each peer channel (docs/pipeline.md): peers hosting stages. */
  frameChannels?: boolean;
}

export class MeshRoom<N extends RoomMesh = RoomMesh> {
  private readonly links = new Map<string, PeerLink>();
  private readonly infos = new Map<string, PeerInfo>();
  private self: PeerInfo | null = null;
  private error: string | null = null;
  private snapshot: MeshSnapshot;
  private readonly listeners = new ChangeListeners();
  private readonly detach: (() => void)[] = [];
  /**
   * Signals from a peer this side has not heard of yet: its offer can overtake our join's answer (it heard of us
   * first). Replayed when the peer is known; bounded, and forgotten if the peer never shows up.
   */
  private readonly early = new Map<string, { signals: LinkSignal[]; since: number }>();
  private readonly outbox: SignalOutbox;
  private readonly presence: PresencePublisher;
  /** A join the server could not take for now (UNAVAILABLE: its database or Redis is down), tried again when it said. */
  private rejoinTimer: ReturnType<typeof setTimeout> | null = null;
  private joined = false;

  constructor(
    private readonly socket: MeshSocket,
    readonly room: string,
    private readonly iceServers: IceServer[],
    private readonly createPeerConnection: PeerConnectionFactory,
    readonly node: N,
    private readonly hooks: MeshRoomHooks = {},
  ) {
    this.snapshot = { room, self: null, peers: [], error: null };
    this.outbox = new SignalOutbox((to, data) =>
      this.socket
        .timeout(10_000)
        .emitWithAck('signal:relay', { room: this.room, to, data })
        .catch(() => null),
    );
    this.presence = new PresencePublisher(
      () => this.capabilities(),
      (capabilities) => this.socket.emit('peer:update', { room: this.room, capabilities }, () => {}),
    );
    this.detach.push(
      node.subscribe(() => {
        this.changed();
        if (this.self) this.presence.publish();
      }),
    );
  }

  private capabilities(): Capabilities {
    const own = this.node.capabilities();
    return {
      backend: own.backend,
      models: own.models,
      tokensPerSecond: own.tokensPerSecond,
      sharing: own.sharing,
      queue: own.queue,
      ...(own.pipeline ? { pipeline: own.pipeline } : {}),
    };
  }

  subscribe = (listener: () => void) => this.listeners.add(listener);

  getSnapshot = () => this.snapshot;

  /** Each link's timeline of its first connection (benchmarks: where a join's time goes). */
  timelines(): { peerId: string; polite: boolean; timeline: LinkTimeline; restarts: number }[] {
    return [...this.links.values()].map((link) => ({
      peerId: link.peerId,
      polite: link.polite,
      timeline: link.timeline,
      restarts: link.restarts,
    }));
  }

  private changed(): void {
    this.snapshot = {
      room: this.room,
      self: this.self,
      error: this.error,
      peers: [...this.infos.values()].map((info) => {
        const peer = this.node.peer(info.peerId);
        return {
          ...info,
          link: this.links.get(info.peerId)?.state() ?? { connection: 'new', channel: 'none' },
          rttMs: peer?.rttMs ?? null,
          mesh: peer?.capabilities ?? null,
          dropped: peer?.channel.droppedTotal() ?? 0,
        };
      }),
    };
    this.listeners.notify();
  }

  private link(peer: PeerInfo): PeerLink {
    let link = this.links.get(peer.peerId);
    if (!link && this.self) {
      let channel: RoomChannel | undefined;
      const made = new PeerLink(
        peer.peerId,
        this.self.peerId > peer.peerId,
        this.createPeerConnection,
        this.iceServers,
        (signal) => this.outbox.send(peer.peerId, signal),
        () => {
          if (made.state().channel === 'closed' && channel) this.node.removePeer(peer.peerId, channel);
          this.changed();
        },
      );
      let frames: Promise<FrameWire | null> | null = null;
      made.onOpen = () => {
        const info = this.infos.get(peer.peerId) ?? peer;
        const opened = this.node.addPeer(peer.peerId, info.displayName, made.wire(), info.userId);
        channel = opened;
        made.onMessage = (data) => opened.receive(data);
        if (!this.hooks.frameChannels || !this.node.addFrameWire) return;
        // One frame channel per connection (negotiated, both sides open it), handed to the node after each open.
        frames ??= openFrameChannel(made.pc).catch(() => null);
        void frames.then((wire) => {
          if (wire && channel === opened) this.node.addFrameWire?.(peer.peerId, wire);
        });
      };
      link = made;
      this.links.set(peer.peerId, link);
    }
    this.infos.set(peer.peerId, peer);
    const early = this.early.get(peer.peerId);
    if (early && link) {
      this.early.delete(peer.peerId);
      for (const signal of early.signals) void link.signal(signal).catch(() => undefined);
    }
    this.changed();
    return link as PeerLink;
  }

  private drop(peerId: string): void {
    const link = this.links.get(peerId);
    if (link) this.node.removePeer(peerId);
    link?.close();
    this.links.delete(peerId);
    this.outbox.forget(peerId);
    this.infos.delete(peerId);
    this.changed();
  }

  async join(): Promise<void> {
    const onPeer: ServerToClientEvents['peer:joined'] = ({ room, peer }) => {
      if (room === this.room) this.link(peer);
    };
    const onLeft: ServerToClientEvents['peer:left'] = ({ room, peerId }) => {
      if (room === this.room) this.drop(peerId);
    };
    // The server took this socket out of the room (it came back to a room that had filled up meanwhile): the links
    // are stale, and the reason is shown as a failed join would be.
    const onKicked: ServerToClientEvents['room:kicked'] = ({ room, error, message }) => {
      if (room !== this.room) return;
      this.reset();
      this.error = message;
      this.changed();
      if (error === 'UNAVAILABLE') this.rejoinLater();
    };
    const onSignal: ServerToClientEvents['signal'] = ({ room, from, data }) => {
      const parsed = LinkSignalSchema.safeParse(data);
      if (room !== this.room || !parsed.success) return;
      const signal = parsed.data;
      const info = this.infos.get(from);
      if (!info || !this.self) {
        const now = Date.now();
        for (const [peerId, entry] of this.early) if (now - entry.since > 30_000) this.early.delete(peerId);
        const entry = this.early.get(from) ?? { signals: [], since: now };
        if (entry.signals.length < 64) entry.signals.push(signal);
        this.early.set(from, entry);
        return;
      }
      void this.link(info)
        .signal(signal)
        .catch(() => undefined);
    };
    // A reconnect the server could not recover (it restarted, or the socket was away too long) comes back as a new
    // peer with no rooms: everyone's peer ids are new, so the old links go and the room is joined afresh.
    const onConnect = () => {
      if (this.socket.recovered || !this.self) return;
      this.reset();
      this.changed();
      void this.enter();
    };
    this.socket.on('peer:joined', onPeer);
    this.socket.on('peer:updated', onPeer);
    this.socket.on('peer:left', onLeft);
    this.socket.on('room:kicked', onKicked);
    this.socket.on('signal', onSignal);
    this.socket.on('connect', onConnect);
    this.detach.push(() => {
      this.socket.off('peer:joined', onPeer);
      this.socket.off('peer:updated', onPeer);
      this.socket.off('peer:left', onLeft);
      this.socket.off('room:kicked', onKicked);
      this.socket.off('signal', onSignal);
      this.socket.off('connect', onConnect);
    });
    this.joined = true;
    await this.enter();
  }

  private rejoinLater(afterMs = 1000): void {
    if (this.rejoinTimer) clearTimeout(this.rejoinTimer);
    this.rejoinTimer = setTimeout(() => {
      this.rejoinTimer = null;
      if (this.joined && !this.self && this.socket.connected) void this.enter();
    }, afterMs);
  }

  /** Forgets every link and member: the server no longer has this socket in the room as we knew it. */
  private reset(): void {
    for (const peerId of [...this.links.keys()]) this.drop(peerId);
    this.infos.clear();
    this.early.clear();
    this.self = null;
  }

  /** Asks the server to join, then makes a link to everyone there. */
  private async enter(): Promise<void> {
    const joinedWith = this.presence.forJoin();
    const result = await this.socket
      .timeout(JOIN_TIMEOUT_MS)
      .emitWithAck('room:join', { room: this.room, capabilities: joinedWith })
      .catch(() => ({
        ok: false as const,
        error: 'INTERNAL' as const,
        message: `The server did not answer the join within ${JOIN_TIMEOUT_MS / 1000} s`,
      }));
    if (!result.ok) {
      this.error = result.message;
      this.changed();
      if (result.error === 'UNAVAILABLE') this.rejoinLater(result.retryInMs);
      return;
    }
    this.error = null;
    this.self = result.data.self;
    this.hooks.joined?.();
    // Those already here, and any announced before our join was answered: a link to each (perfect negotiation
    // sorts out who offers).
    for (const peer of [...result.data.peers, ...this.infos.values()]) this.link(peer);
    this.changed();
  }

  async leave(): Promise<void> {
    this.joined = false;
    if (this.rejoinTimer) clearTimeout(this.rejoinTimer);
    this.detach.splice(0).forEach((off) => off());
    this.presence.stop();
    for (const peerId of [...this.links.keys()]) this.drop(peerId);
    if (this.socket.connected)
      await this.socket
        .timeout(JOIN_TIMEOUT_MS)
        .emitWithAck('room:leave', { room: this.room })
        .catch(() => undefined);
  }
}
