// A room's full mesh: a PeerLink to every other member, made as they join and closed as they leave, with SDP
// and ICE relayed through the server's `/mesh` namespace; each open data channel joins the MeshNode (mesh
// inference, RTT). The browser's room screen reads it as an external store; the headless peer drives it too.
import type { Socket } from 'socket.io-client';
import type { MeshNode } from '../mesh/mesh-node.ts';
import type { PeerChannel } from '../mesh/peer-channel.ts';
import type { PeerCapabilities } from '../peer-protocol.ts';
import {
  type Capabilities,
  type ClientToServerEvents,
  LinkSignalSchema,
  type PeerInfo,
  type ServerToClientEvents,
} from '../socket-contract.ts';
import { type IceServer, type LinkSignal, type LinkState, type PeerConnectionFactory, PeerLink } from './peer-link.ts';

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

export class MeshRoom {
  private readonly links = new Map<string, PeerLink>();
  private readonly infos = new Map<string, PeerInfo>();
  private self: PeerInfo | null = null;
  private error: string | null = null;
  private snapshot: MeshSnapshot;
  private readonly listeners = new Set<() => void>();
  private readonly detach: (() => void)[] = [];
  /**
   * Signals from a peer this side has not heard of yet: its offer can overtake our join's answer (it heard of us
   * first). Replayed when the peer is known; bounded, and forgotten if the peer never shows up.
   */
  private readonly early = new Map<string, { signals: LinkSignal[]; since: number }>();
  /** Signals waiting to go to each peer (see `relay`). */
  private readonly outbox = new Map<string, { queue: LinkSignal[]; sending: boolean }>();

  private presenceTimer: ReturnType<typeof setTimeout> | null = null;
  /** A join the server could not take for now (UNAVAILABLE: its database or Redis is down), tried again when it said. */
  private rejoinTimer: ReturnType<typeof setTimeout> | null = null;
  private joined = false;
  private presencePending = false;
  private presenceSent = '';

  constructor(
    private readonly socket: MeshSocket,
    readonly room: string,
    private readonly iceServers: IceServer[],
    private readonly createPeerConnection: PeerConnectionFactory,
    readonly node: MeshNode,
  ) {
    this.snapshot = { room, self: null, peers: [], error: null };
    node.onChange = () => {
      this.changed();
      this.publishPresence();
    };
  }

  /**
   * The server's member list shows capabilities too (before any channel opens), and job records check that a
   * serving peer shares: a change goes out at once, further ones at most once a second.
   */
  private publishPresence(): void {
    if (!this.self) return;
    // Only what changed (pings and hellos from peers change nothing here).
    const capabilities = this.presence();
    const text = JSON.stringify(capabilities);
    if (text === this.presenceSent) return;
    if (this.presenceTimer) {
      this.presencePending = true;
      return;
    }
    this.presenceSent = text;
    this.socket.emit('peer:update', { room: this.room, capabilities }, () => {});
    this.presenceTimer = setTimeout(() => {
      this.presenceTimer = null;
      if (this.presencePending) {
        this.presencePending = false;
        this.publishPresence();
      }
    }, 1000);
  }

  private presence(): Capabilities {
    const own = this.node.capabilities();
    return { backend: own.backend, models: own.models, tokensPerSecond: own.tokensPerSecond, sharing: own.sharing, queue: Math.min(own.queue, 1000) };
  }

  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = () => this.snapshot;

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
    this.listeners.forEach((listener) => listener());
  }

  private link(peer: PeerInfo): PeerLink {
    let link = this.links.get(peer.peerId);
    if (!link && this.self) {
      let channel: PeerChannel | undefined;
      const made = new PeerLink(peer.peerId, this.self.peerId > peer.peerId, this.createPeerConnection, this.iceServers, (signal) => this.relay(peer.peerId, signal), () => {
        if (made.state().channel === 'closed' && channel) this.node.removePeer(peer.peerId, channel);
        this.changed();
      });
      made.onOpen = () => {
        const info = this.infos.get(peer.peerId) ?? peer;
        const opened = this.node.addPeer(peer.peerId, info.displayName, made.wire(), info.userId);
        channel = opened;
        made.onMessage = (data) => opened.receive(data);
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

  /**
   * Sends signals to one peer one at a time, each after the server acknowledged the last, so they arrive in the
   * order they were made (a candidate ahead of its description is refused); candidates that queued up meanwhile
   * go as one message. A rate-limited signal is sent again when the server says it may be.
   */
  private relay(to: string, signal: LinkSignal): void {
    const box = this.outbox.get(to) ?? { queue: [], sending: false };
    this.outbox.set(to, box);
    // The head of the queue may be on its way: only a later entry takes more candidates.
    const last = box.queue.length > 1 ? box.queue.at(-1) : undefined;
    if (last && 'candidates' in last && 'candidates' in signal && last.candidates.length + signal.candidates.length <= 64) last.candidates.push(...signal.candidates);
    else box.queue.push(signal);
    if (box.sending) return;
    box.sending = true;
    void (async () => {
      while (box.queue.length && this.outbox.get(to) === box) {
        const data = box.queue[0] as LinkSignal;
        const result = await this.socket
          .timeout(10_000)
          .emitWithAck('signal:relay', { room: this.room, to, data })
          .catch(() => null);
        if (result && !result.ok && result.error === 'RATE_LIMITED') {
          await new Promise((resolve) => setTimeout(resolve, result.retryInMs ?? 1000));
          continue;
        }
        // Delivered, or undeliverable (the peer left, or no answer in 10 s): the watchdog renegotiates if needed.
        box.queue.shift();
      }
      box.sending = false;
    })();
  }

  private drop(peerId: string): void {
    const link = this.links.get(peerId);
    if (link) this.node.removePeer(peerId);
    link?.close();
    this.links.delete(peerId);
    this.outbox.delete(peerId);
    this.infos.delete(peerId);
    this.changed();
  }

  async join(): Promise<void> {
    const on = <E extends 'peer:joined' | 'peer:left' | 'peer:updated' | 'signal' | 'room:kicked'>(event: E, handler: (payload: never) => void) => {
      this.socket.on(event, handler as never);
      this.detach.push(() => this.socket.off(event, handler as never));
    };
    on('peer:joined', ({ room, peer }: { room: string; peer: PeerInfo }) => {
      if (room === this.room) this.link(peer);
    });
    on('peer:updated', ({ room, peer }: { room: string; peer: PeerInfo }) => {
      if (room === this.room) this.link(peer);
    });
    on('peer:left', ({ room, peerId }: { room: string; peerId: string }) => {
      if (room === this.room) this.drop(peerId);
    });
    // The server took this socket out of the room (it came back to a room that had filled up meanwhile): the links
    // are stale, and the reason is shown as a failed join would be.
    on('room:kicked', ({ room, error, message }: { room: string; error: string; message: string }) => {
      if (room !== this.room) return;
      for (const peerId of [...this.links.keys()]) this.drop(peerId);
      this.infos.clear();
      this.early.clear();
      this.self = null;
      this.error = message;
      this.changed();
      if (error === 'UNAVAILABLE') this.rejoinLater();
    });
    on('signal', ({ room, from, data }: { room: string; from: string; data: unknown }) => {
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
    });
    // A reconnect the server could not recover (it restarted, or the socket was away too long) comes back as a new
    // peer with no rooms: everyone's peer ids are new, so the old links go and the room is joined afresh.
    const onConnect = () => {
      if (this.socket.recovered || !this.self) return;
      for (const peerId of [...this.links.keys()]) this.drop(peerId);
      this.infos.clear();
      this.early.clear();
      this.self = null;
      this.changed();
      void this.enter();
    };
    this.socket.on('connect', onConnect);
    this.detach.push(() => this.socket.off('connect', onConnect));
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

  /** Asks the server to join, then makes a link to everyone there. */
  private async enter(): Promise<void> {
    const joinedWith = this.presence();
    this.presenceSent = JSON.stringify(joinedWith);
    const result = await this.socket
      .timeout(JOIN_TIMEOUT_MS)
      .emitWithAck('room:join', { room: this.room, capabilities: joinedWith })
      .catch(() => ({ ok: false as const, error: 'INTERNAL' as const, message: `The server did not answer the join within ${JOIN_TIMEOUT_MS / 1000} s` }));
    if (!result.ok) {
      this.error = result.message;
      this.changed();
      if (result.error === 'UNAVAILABLE') this.rejoinLater(result.retryInMs);
      return;
    }
    this.error = null;
    this.self = result.data.self;
    // For bench/signaling.ts: join acknowledged → every data channel open.
    performance.mark('mesh:joined');
    // Those already here, and any announced before our join was answered: a link to each (perfect negotiation
    // sorts out who offers).
    for (const peer of [...result.data.peers, ...this.infos.values()]) this.link(peer);
    this.changed();
  }

  async leave(): Promise<void> {
    this.joined = false;
    if (this.rejoinTimer) clearTimeout(this.rejoinTimer);
    this.detach.splice(0).forEach((off) => off());
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    for (const peerId of [...this.links.keys()]) this.drop(peerId);
    if (this.socket.connected) await this.socket.timeout(JOIN_TIMEOUT_MS).emitWithAck('room:leave', { room: this.room }).catch(() => undefined);
  }
}
