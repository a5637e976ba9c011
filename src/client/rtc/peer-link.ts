// One WebRTC connection to one peer, with the perfect-negotiation pattern (either side may offer; the polite
// side yields on glare), trickle ICE, an ICE restart when the connection fails, and a heartbeat over the data
// channel that measures the round-trip time.
export type LinkSignal = { description: RTCSessionDescriptionInit } | { candidate: RTCIceCandidateInit | null };

export interface LinkState {
  connection: RTCPeerConnectionState;
  channel: RTCDataChannelState | 'none';
  rttMs: number | null;
}

const HEARTBEAT_MS = 2000;

export class PeerLink {
  readonly pc: RTCPeerConnection;
  readonly channel: RTCDataChannel;
  private makingOffer = false;
  private ignoreOffer = false;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private rttMs: number | null = null;
  private closed = false;
  /** Messages other than the heartbeat (the mesh inference protocol uses these). */
  onMessage: (data: string) => void = () => {};

  constructor(
    readonly peerId: string,
    /** The polite peer rolls back its own offer on glare; exactly one side of a pair is polite. */
    private readonly polite: boolean,
    iceServers: RTCIceServer[],
    private readonly send: (signal: LinkSignal) => void,
    private readonly onChange: () => void,
  ) {
    this.pc = new RTCPeerConnection({ iceServers });
    // Negotiated on both sides with the same id: no ondatachannel race, and either side can open it.
    this.channel = this.pc.createDataChannel('mesh', { negotiated: true, id: 0 });
    this.channel.onopen = () => {
      this.startHeartbeat();
      this.onChange();
    };
    this.channel.onclose = () => this.onChange();
    this.channel.onmessage = (event) => this.receive(String(event.data));
    this.pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await this.pc.setLocalDescription();
        if (this.pc.localDescription) this.send({ description: this.pc.localDescription.toJSON() });
      } catch {
        // A failed offer is retried by the next negotiationneeded or an ICE restart.
      } finally {
        this.makingOffer = false;
      }
    };
    this.pc.onicecandidate = ({ candidate }) => this.send({ candidate: candidate ? candidate.toJSON() : null });
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === 'failed' && !this.closed) this.pc.restartIce();
      this.onChange();
    };
  }

  async signal(signal: LinkSignal): Promise<void> {
    if (this.closed) return;
    if ('description' in signal) {
      const description = signal.description;
      const collision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        await this.pc.setLocalDescription();
        if (this.pc.localDescription) this.send({ description: this.pc.localDescription.toJSON() });
      }
      return;
    }
    try {
      await this.pc.addIceCandidate(signal.candidate ?? undefined);
    } catch (error) {
      // Candidates for an offer we ignored are expected to fail.
      if (!this.ignoreOffer) throw error;
    }
  }

  private startHeartbeat(): void {
    this.heartbeat ??= setInterval(() => {
      if (this.channel.readyState === 'open') this.channel.send(JSON.stringify({ hb: 'ping', t: performance.now() }));
    }, HEARTBEAT_MS);
    if (this.channel.readyState === 'open') this.channel.send(JSON.stringify({ hb: 'ping', t: performance.now() }));
  }

  private receive(text: string): void {
    if (text.startsWith('{"hb":')) {
      const beat = JSON.parse(text) as { hb: 'ping' | 'pong'; t: number };
      if (beat.hb === 'ping') this.channel.send(JSON.stringify({ hb: 'pong', t: beat.t }));
      else {
        this.rttMs = performance.now() - beat.t;
        this.onChange();
      }
      return;
    }
    this.onMessage(text);
  }

  state(): LinkState {
    return { connection: this.pc.connectionState, channel: this.channel.readyState, rttMs: this.rttMs };
  }

  close(): void {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.channel.close();
    this.pc.close();
  }
}
