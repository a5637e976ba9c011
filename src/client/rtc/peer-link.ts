// One WebRTC connection to one peer, with the perfect-negotiation pattern (either side may offer; the polite
// side yields on glare), trickle ICE, recovery when the connection fails or never comes up, and a heartbeat over
// the data channel that measures the round-trip time.
import type { LinkSignal } from '../../shared/socket-contract.ts';

export type { LinkSignal };

export interface LinkState {
  connection: RTCPeerConnectionState;
  channel: RTCDataChannelState | 'none';
  rttMs: number | null;
}

const HEARTBEAT_MS = 2000;
/** A link whose channel is not open by then is renegotiated with fresh ICE credentials; doubled per try. */
const CONNECT_TIMEOUT_MS = 4000;
const CONNECT_TIMEOUT_MAX_MS = 30_000;

export class PeerLink {
  readonly pc: RTCPeerConnection;
  private channel: RTCDataChannel | null = null;
  private makingOffer = false;
  private ignoreOffer = false;
  /** Signals are applied one at a time, in the order they arrived. */
  private inbox: Promise<void> = Promise.resolve();
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private watchdog: ReturnType<typeof setTimeout> | null = null;
  private connectTimeoutMs = CONNECT_TIMEOUT_MS;
  private rttMs: number | null = null;
  private closed = false;
  /** Renegotiations after the first offer (ICE restarts), for tests and the room view. */
  restarts = 0;
  /** Messages other than the heartbeat (the mesh inference protocol uses these). */
  onMessage: (data: string) => void = () => {};

  constructor(
    readonly peerId: string,
    /** The polite peer rolls back its own offer on glare; exactly one side of a pair is polite. */
    private readonly polite: boolean,
    iceServers: RTCIceServer[],
    private readonly sendSignal: (signal: LinkSignal) => void,
    private readonly onChange: () => void,
  ) {
    this.pc = new RTCPeerConnection({ iceServers });
    this.pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await this.pc.setLocalDescription();
        this.sendDescription();
      } catch {
        // A failed offer is retried by the watchdog.
      } finally {
        this.makingOffer = false;
      }
    };
    this.pc.onicecandidate = ({ candidate }) => this.sendSignal({ candidates: [candidate ? candidate.toJSON() : null] });
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === 'failed') {
        this.recover();
        this.armWatchdog();
      }
      this.onChange();
    };
    // Only the impolite side offers: it opens the channel at once, and it alone renegotiates. When both offered
    // together, the polite side's rollback sometimes left Chromium gathering no ICE candidates for its answer (the
    // pair stayed "new" for good, 2 of 15 simultaneous joins), and after rollbacks both sides went on offering to
    // each other without end. The polite side adds its side of the channel when the first offer comes.
    if (!this.polite) this.openChannel();
    this.armWatchdog();
  }

  private sendDescription(): void {
    const local = this.pc.localDescription;
    if (local && (local.type === 'offer' || local.type === 'answer')) this.sendSignal({ description: { type: local.type, sdp: local.sdp } });
  }

  /** The negotiated data channel (same id on both sides, so neither waits for `ondatachannel`). */
  private openChannel(): void {
    if (this.channel || this.closed) return;
    const channel = this.pc.createDataChannel('mesh', { negotiated: true, id: 0 });
    channel.onopen = () => {
      this.startHeartbeat();
      this.onChange();
    };
    channel.onclose = () => this.onChange();
    channel.onmessage = (event) => this.receive(String(event.data));
    this.channel = channel;
  }

  private armWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.closed || this.channel?.readyState === 'open') return;
      this.recover();
      this.connectTimeoutMs = Math.min(2 * this.connectTimeoutMs, CONNECT_TIMEOUT_MAX_MS);
      this.armWatchdog();
    }, this.connectTimeoutMs);
  }

  /**
   * A failed or stuck connection, from the impolite side only: an offer still unanswered is sent again (it or its
   * answer was lost), otherwise the pair renegotiates with fresh ICE credentials.
   */
  private recover(): void {
    if (this.closed || this.polite) return;
    this.restarts++;
    this.inbox = this.inbox.then(() => {
      if (this.pc.signalingState === 'have-local-offer') this.sendDescription();
      else this.pc.restartIce();
    });
  }

  /** Applies a signal from the other side, after every earlier one. */
  signal(signal: LinkSignal): Promise<void> {
    const next = this.inbox.then(() => this.apply(signal));
    this.inbox = next.catch(() => undefined);
    return next;
  }

  private async apply(signal: LinkSignal): Promise<void> {
    if (this.closed) return;
    if ('description' in signal) {
      const description = signal.description;
      const collision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        // The offer carries the data channel's section: adding ours now needs no negotiation of its own.
        this.openChannel();
        await this.pc.setLocalDescription();
        this.sendDescription();
      }
      return;
    }
    for (const candidate of signal.candidates) {
      try {
        await this.pc.addIceCandidate(candidate ?? undefined);
      } catch (error) {
        // Candidates for an offer we ignored are expected to fail.
        if (!this.ignoreOffer) throw error;
      }
    }
  }

  private beat(kind: 'ping' | 'pong', t: number): void {
    if (this.channel?.readyState === 'open') this.channel.send(JSON.stringify({ hb: kind, t }));
  }

  private startHeartbeat(): void {
    this.connectTimeoutMs = CONNECT_TIMEOUT_MS;
    this.heartbeat ??= setInterval(() => this.beat('ping', performance.now()), HEARTBEAT_MS);
    this.beat('ping', performance.now());
  }

  private receive(text: string): void {
    if (text.startsWith('{"hb":')) {
      const beat = JSON.parse(text) as { hb: 'ping' | 'pong'; t: number };
      if (beat.hb === 'ping') this.beat('pong', beat.t);
      else {
        this.rttMs = performance.now() - beat.t;
        this.onChange();
      }
      return;
    }
    this.onMessage(text);
  }

  /** A message to the peer over the data channel; false when the channel is not open. */
  send(text: string): boolean {
    if (this.channel?.readyState !== 'open') return false;
    this.channel.send(text);
    return true;
  }

  state(): LinkState {
    return { connection: this.pc.connectionState, channel: this.channel?.readyState ?? 'none', rttMs: this.rttMs };
  }

  close(): void {
    this.closed = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.channel?.close();
    this.pc.close();
  }
}
