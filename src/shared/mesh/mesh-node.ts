// One device's part in a room's mesh inference, the same in a browser tab and in the headless Node peer: a peer
// channel per member (capabilities from their `hello`, RTT from ping/pong), the job server that serves them when
// this device shares its compute, and the job requester that asks them.
import { type OutgoingPeerMessage, PEER_LIMITS, type PeerCapabilities, type PeerMessage } from '../peer-protocol.ts';
import type { EngineGate, MeshEngine } from './engine-gate.ts';
import { DEFAULT_JOB_SERVER_OPTIONS, JobServer, type JobServerOptions } from './job-server.ts';
import { DEFAULT_REQUESTER_OPTIONS, JobRequester, type JobRequesterOptions, type PeerView } from './job-requester.ts';
import { PeerChannel, type Wire } from './peer-channel.ts';
import { ChangeListeners } from '../change-listeners.ts';
import type { FrameWire } from '../pipeline/frame-wire.ts';
import { RoomPipeline } from '../pipeline/room-pipeline.ts';
import { StageServer, type StageSource } from '../pipeline/stage-server.ts';

const PING_MS = 2000;
const FIRST_PING_MS = 250;
/** Weight of a new RTT sample in the smoothed RTT (as TCP's SRTT, a little quicker). */
const RTT_GAIN = 0.25;

export interface MeshPeer {
  peerId: string;
  /** The user behind it, as the signaling server stamped it. */
  userId: string;
  name: string;
  channel: PeerChannel;
  capabilities: PeerCapabilities | null;
  rttMs: number | null;
  timer: ReturnType<typeof setInterval>;
  firstPing: ReturnType<typeof setTimeout> | null;
}

export interface MeshNodeOptions {
  adapter: PeerCapabilities['adapter'];
  serving?: JobServerOptions;
  requesting?: JobRequesterOptions;
  /** The pipeline stages this device hosts (docs/pipeline.md); none without it. */
  stages?: StageSource | null;
}

export class MeshNode {
  readonly server: JobServer;
  readonly requester: JobRequester;
  /** Pipeline stages hosted here for the room's requesters, and this device's pipeline jobs (docs/pipeline.md). */
  readonly stages: StageServer;
  readonly pipelines: RoomPipeline;
  private readonly peers = new Map<string, MeshPeer>();
  /** Decode speed measured on the last jobs run here (local or served). */
  private measuredTokensPerSecond: number | null = null;
  private readonly listeners = new ChangeListeners();

  constructor(
    private readonly engine: MeshEngine,
    private readonly gate: EngineGate,
    private readonly options: MeshNodeOptions,
  ) {
    this.server = new JobServer(engine, gate, options.serving ?? DEFAULT_JOB_SERVER_OPTIONS);
    this.requester = new JobRequester(() => this.views(), options.requesting ?? DEFAULT_REQUESTER_OPTIONS);
    this.server.subscribe(() => {
      const last = this.server.served.at(-1);
      if (last && last.tokensPerSecond > 0) this.measuredTokensPerSecond = last.tokensPerSecond;
      this.announce();
    });
    this.requester.subscribe(() => this.changed());
    this.stages = new StageServer(options.stages ?? null, { corruptTokens: options.serving?.corruptTokens === true });
    this.stages.subscribe(() => this.announce());
    this.pipelines = new RoomPipeline(
      () => this.views(),
      (peerId) => this.stages.wire(peerId),
      (userId) => this.requester.isExcluded({ userId }),
    );
  }

  /** The frame channel to `peerId` opened (MeshRoom opens one beside each peer channel when asked to). */
  addFrameWire(peerId: string, wire: FrameWire): void {
    this.stages.addWire(peerId, wire);
    this.changed();
  }

  /** Records a decode speed measured here (local chat), so peers can rank this one. */
  measured(tokensPerSecond: number): void {
    if (tokensPerSecond <= 0) return;
    this.measuredTokensPerSecond = tokensPerSecond;
    this.announce();
  }

  capabilities(): PeerCapabilities {
    const loaded = this.engine.loaded();
    const pipeline = this.stages.capability();
    return {
      backend: loaded?.backend ?? null,
      adapter: this.options.adapter,
      models: loaded ? [loaded.model] : [],
      // The test-only dishonest peer lies about its speed too, so schedulers pick it first.
      tokensPerSecond: this.options.serving?.corruptTokens ? 10_000 : this.measuredTokensPerSecond,
      queue: Math.min(this.gate.queued('mesh'), PEER_LIMITS.reportedQueue),
      sharing: this.server.sharing,
      ...(pipeline ? { pipeline } : {}),
    };
  }

  setSharing(sharing: boolean): void {
    this.server.sharing = sharing;
    this.announce();
  }

  /** Calls `listener` after any change (capabilities, peers, their hellos and RTTs); returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    return this.listeners.add(listener);
  }

  private changed(): void {
    this.listeners.notify();
  }

  /** Tells every peer this device's capabilities (after a change: model loaded, sharing, queue). */
  announce(): void {
    const hello: OutgoingPeerMessage = { type: 'hello', capabilities: this.capabilities() };
    for (const peer of this.peers.values()) void peer.channel.send(hello);
    this.changed();
  }

  /** A member whose data channel just opened; the link feeds `channel.receive` with what arrives. */
  addPeer(peerId: string, name: string, wire: Wire, userId: string = peerId): PeerChannel {
    this.removePeer(peerId);
    const channel = new PeerChannel(wire);
    const peer: MeshPeer = {
      peerId,
      userId,
      name,
      channel,
      capabilities: null,
      rttMs: null,
      timer: setInterval(() => void channel.send({ type: 'ping', t: performance.now() }), PING_MS),
      firstPing: null,
    };
    channel.onMessage = (message) => this.receive(peer, message);
    this.peers.set(peerId, peer);
    void channel.send({ type: 'hello', capabilities: this.capabilities() });
    // The first ping waits a moment: one sent as the channel opens can take a second while the transport settles.
    peer.firstPing = setTimeout(() => void channel.send({ type: 'ping', t: performance.now() }), FIRST_PING_MS);
    this.changed();
    return channel;
  }

  /** A member left or its channel closed; with `channel`, only if that is still the member's channel. */
  removePeer(peerId: string, channel?: PeerChannel): void {
    const peer = this.peers.get(peerId);
    if (!peer || (channel && peer.channel !== channel)) return;
    clearInterval(peer.timer);
    if (peer.firstPing) clearTimeout(peer.firstPing);
    this.peers.delete(peerId);
    this.server.peerLeft(peerId);
    this.requester.peerLeft(peerId);
    this.stages.peerLeft(peerId);
    this.pipelines.peerLeft(peerId);
    this.changed();
  }

  peer(peerId: string): MeshPeer | undefined {
    return this.peers.get(peerId);
  }

  list(): MeshPeer[] {
    return [...this.peers.values()];
  }

  private views(): PeerView[] {
    return this.list().flatMap((peer) =>
      peer.capabilities
        ? [
            {
              peerId: peer.peerId,
              userId: peer.userId,
              name: peer.name,
              capabilities: peer.capabilities,
              rttMs: peer.rttMs,
              send: (message: OutgoingPeerMessage) => peer.channel.send(message),
            },
          ]
        : [],
    );
  }

  private receive(peer: MeshPeer, message: PeerMessage): void {
    // A message still in flight from a peer that left (or was replaced) must not bring back what was dropped for it.
    if (this.peers.get(peer.peerId) !== peer) return;
    const send = (reply: OutgoingPeerMessage) => peer.channel.send(reply);
    switch (message.type) {
      case 'hello':
        peer.capabilities = message.capabilities;
        this.changed();
        return;
      case 'ping':
        void send({ type: 'pong', t: message.t });
        return;
      case 'pong':
        {
          const sample = Math.max(0, performance.now() - message.t);
          peer.rttMs = peer.rttMs === null ? sample : peer.rttMs + RTT_GAIN * (sample - peer.rttMs);
        }
        this.changed();
        return;
      case 'job:offer':
        this.server.offer(peer.peerId, message, send);
        return;
      case 'job:cancel':
        this.server.cancel(peer.peerId, message.jobId);
        return;
      case 'job:accept':
      case 'job:reject':
      case 'job:token':
      case 'job:done':
      case 'job:error':
        this.requester.receive(peer.peerId, message);
        return;
      case 'pipe:open':
      case 'pipe:close':
      case 'pipe:upstream':
      case 'pipe:redirect':
      case 'pipe:status':
        this.stages.receive(peer.peerId, message, send);
        return;
      case 'pipe:opened':
      case 'pipe:failed':
      case 'pipe:position':
      case 'pipe:redirected':
        this.pipelines.receive(peer.peerId, message);
        return;
      default: {
        const unreachable: never = message;
        throw new Error(`Unhandled peer message ${JSON.stringify(unreachable)}`);
      }
    }
  }

  close(): void {
    this.stages.stop();
    for (const peerId of [...this.peers.keys()]) this.removePeer(peerId);
  }
}
