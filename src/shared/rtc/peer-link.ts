// One WebRTC connection to one peer, with the perfect-negotiation pattern (either side may offer; the polite
// side yields on glare), trickle ICE, and recovery when the connection fails or never comes up. The same class
// runs on the browser's RTCPeerConnection and on werift's in Node (the headless peer): it uses only the part of
// the standard API both have, described below. One file past 300 lines because negotiation, candidates, the
// watchdog and the link's state share one connection's private state; the room batches its signals (signal-outbox.ts).
import { onceBufferedBelow, type Wire } from '../wire.ts';
import type { LinkSignal } from '../socket-contract.ts';

export type { LinkSignal };

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface DataChannelLike {
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  onopen: (() => void) | null | undefined;
  onclose: (() => void) | null | undefined;
  onmessage: ((event: { data: unknown }) => void) | null | undefined;
  addEventListener(type: 'bufferedamountlow' | 'close', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'bufferedamountlow' | 'close', listener: () => void): void;
  send(text: string): void;
  close(): void;
}

export interface PeerConnectionLike {
  readonly connectionState: string;
  readonly iceConnectionState?: string;
  readonly signalingState: string;
  readonly localDescription: { type: string; sdp: string } | null;
  onnegotiationneeded: (() => void) | null;
  onicecandidate: ((event: { candidate?: { toJSON(): object } | null }) => void) | null;
  onconnectionstatechange: (() => void) | null;
  oniceconnectionstatechange?: (() => void) | null;
  createDataChannel(label: string, options: { negotiated: true; id: number }): DataChannelLike;
  setLocalDescription(): Promise<unknown>;
  setRemoteDescription(description: { type: 'offer' | 'answer'; sdp: string }): Promise<unknown>;
  addIceCandidate(candidate?: object): Promise<unknown>;
  restartIce(): void;
  close(): unknown;
}

/** Makes a peer connection: `new RTCPeerConnection(config)` in browsers, werift's in Node. */
export type PeerConnectionFactory = (config: { iceServers: IceServer[] }) => PeerConnectionLike;

type RTCIceCandidateJson = Extract<LinkSignal, { candidates: unknown }>['candidates'][number] & object;

export interface LinkState {
  connection: string;
  channel: string;
  /**
   * ICE found no pair of addresses that reach each other (the connection went `failed`) and the channel has not
   * opened since: the two are on networks with no direct route (symmetric NATs, firewalls), and only a TURN relay
   * (ICE_SERVERS) would carry the link. The link keeps retrying meanwhile.
   */
  noRoute?: boolean;
}

/** The signal schema's cap on candidates in one signal (src/shared/socket-contract.ts). */
const MAX_CANDIDATES_PER_SIGNAL = 64;

/** A link whose channel is not open by then is renegotiated with fresh ICE credentials; doubled per try. */
const CONNECT_TIMEOUT_MS = 4000;
const CONNECT_TIMEOUT_MAX_MS = 30_000;

/**
 * When each step of a link's first connection happened (performance.now(), ms): where a room join's time goes
 * (bench/werift-joins.ts prints the phases). The impolite side sends the offer and receives the answer; the polite
 * side the reverse. `connected` is the connection state's (ICE and DTLS done); `open`, the data channel's (SCTP).
 */
export interface LinkTimeline {
  created: number;
  offerSent?: number;
  offerReceived?: number;
  answerSent?: number;
  answerReceived?: number;
  firstCandidateSent?: number;
  firstCandidateReceived?: number;
  /** ICE found a working pair (`iceConnectionState` connected); DTLS follows. */
  iceConnected?: number;
  connected?: number;
  open?: number;
}

export class PeerLink {
  readonly timeline: LinkTimeline = { created: performance.now() };
  readonly pc: PeerConnectionLike;
  private channel: DataChannelLike | null = null;
  private makingOffer = false;
  /** Local candidates waiting for the description being made to be sent first; null when none is being made. */
  private heldCandidates: (RTCIceCandidateJson | null)[] | null = null;
  private ignoreOffer = false;
  /** Signals are applied one at a time, in the order they arrived. */
  private inbox: Promise<void> = Promise.resolve();
  private watchdog: ReturnType<typeof setTimeout> | null = null;
  private connectTimeoutMs = CONNECT_TIMEOUT_MS;
  private closed = false;
  /** Renegotiations after the first offer (ICE restarts), for tests and the room view. */
  restarts = 0;
  /** ICE failed since the channel was last open (LinkState.noRoute). */
  private iceFailed = false;
  /** What arrives on the data channel (the mesh inference protocol). */
  onMessage: (data: unknown) => void = () => {};
  /** The data channel opened (again). */
  onOpen: () => void = () => {};

  constructor(
    readonly peerId: string,
    /** The polite peer rolls back its own offer on glare; exactly one side of a pair is polite. */
    readonly polite: boolean,
    createPeerConnection: PeerConnectionFactory,
    iceServers: IceServer[],
    private readonly sendSignal: (signal: LinkSignal) => void,
    private readonly onChange: () => void,
  ) {
    this.pc = createPeerConnection({ iceServers });
    this.pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await this.describe();
      } catch {
        // A failed offer is retried by the watchdog.
      } finally {
        this.makingOffer = false;
      }
    };
    this.pc.onicecandidate = ({ candidate }) => {
      const json = candidate ? (candidate.toJSON() as RTCIceCandidateJson) : null;
      if (this.heldCandidates) this.heldCandidates.push(json);
      else this.sendCandidates([json]);
    };
    this.pc.oniceconnectionstatechange = () => {
      if (this.pc.iceConnectionState === 'connected') this.mark('iceConnected');
    };
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === 'connected') this.mark('connected');
      if (this.pc.connectionState === 'failed') {
        // The first failure renegotiates at once; while it keeps failing the watchdog retries, each time later. Where
        // no address pair works at all, failures come within milliseconds, and retrying on each would renegotiate
        // in a tight loop through the signaling server.
        if (!this.iceFailed) {
          this.recover();
          this.armWatchdog();
        }
        this.iceFailed = true;
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

  private mark(step: Exclude<keyof LinkTimeline, 'created'>): void {
    this.timeline[step] ??= performance.now();
  }

  /**
   * Sets and sends the local description. Candidates gathered meanwhile wait and follow it: werift gathers during
   * setLocalDescription, so they went out before the offer, and the other side, with no remote description yet,
   * could only drop them (bench/README.md, "A lean server": joins).
   */
  private async describe(): Promise<void> {
    this.heldCandidates = [];
    try {
      await this.pc.setLocalDescription();
      this.sendDescription();
    } finally {
      const held = this.heldCandidates;
      this.heldCandidates = null;
      for (let i = 0; i < held.length; i += MAX_CANDIDATES_PER_SIGNAL)
        this.sendCandidates(held.slice(i, i + MAX_CANDIDATES_PER_SIGNAL));
    }
  }

  private sendCandidates(candidates: (RTCIceCandidateJson | null)[]): void {
    if (candidates.some((candidate) => candidate)) this.mark('firstCandidateSent');
    this.sendSignal({ candidates });
  }

  private sendDescription(): void {
    const local = this.pc.localDescription;
    if (local && (local.type === 'offer' || local.type === 'answer')) {
      this.mark(local.type === 'offer' ? 'offerSent' : 'answerSent');
      this.sendSignal({ description: { type: local.type, sdp: local.sdp } });
    }
  }

  /** The negotiated data channel (same id on both sides, so neither waits for `ondatachannel`). */
  private openChannel(): void {
    if (this.channel || this.closed) return;
    const channel = this.pc.createDataChannel('mesh', { negotiated: true, id: 0 });
    channel.onopen = () => {
      this.mark('open');
      this.iceFailed = false;
      this.connectTimeoutMs = CONNECT_TIMEOUT_MS;
      this.onOpen();
      this.onChange();
    };
    channel.onclose = () => this.onChange();
    channel.onmessage = (event) => this.onMessage(event.data);
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
    this.inbox = this.inbox.then(() => {
      if (this.pc.signalingState === 'have-local-offer') {
        this.restarts++;
        this.sendDescription();
      } else if (!this.handshaking()) {
        this.restarts++;
        this.pc.restartIce();
      }
    });
  }

  /**
   * ICE has a working pair and DTLS or SCTP is still under way. Restarting ICE then helps nothing (the handshake
   * goes on over the same pair, and a handshake that gives up turns the connection `failed`, which recovers) and
   * set werift back to the start: on two busy cores, eight werift peers' handshakes outlasted the 4 s watchdog, were
   * restarted, and some pairs never opened (bench/README.md, "A lean server": joins).
   */
  private handshaking(): boolean {
    const ice = this.pc.iceConnectionState;
    return (ice === 'connected' || ice === 'completed') && this.pc.connectionState !== 'failed';
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
      this.mark(description.type === 'offer' ? 'offerReceived' : 'answerReceived');
      const collision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        // The offer carries the data channel's section: adding ours now needs no negotiation of its own.
        this.openChannel();
        await this.describe();
      }
      return;
    }
    if (signal.candidates.some((candidate) => candidate)) this.mark('firstCandidateReceived');
    for (const candidate of signal.candidates) {
      try {
        await this.pc.addIceCandidate(candidate ?? undefined);
      } catch (error) {
        // Candidates for an offer we ignored are expected to fail.
        if (!this.ignoreOffer) throw error;
      }
    }
  }

  /** The data channel as the peer protocol's wire (backpressure through `bufferedamountlow`). */
  wire(): Wire {
    return {
      send: (text) => this.channel?.send(text),
      isOpen: () => this.channel?.readyState === 'open',
      bufferedAmount: () => this.channel?.bufferedAmount ?? 0,
      onceBelow: (threshold, listener) =>
        this.channel ? onceBufferedBelow(this.channel, threshold, listener) : listener(),
    };
  }

  /** A message to the peer over the data channel; false when the channel is not open. */
  send(text: string): boolean {
    if (this.channel?.readyState !== 'open') return false;
    this.channel.send(text);
    return true;
  }

  state(): LinkState {
    const channel = this.channel?.readyState ?? 'none';
    return {
      connection: this.pc.connectionState,
      channel,
      ...(this.iceFailed && channel !== 'open' ? { noRoute: true } : {}),
    };
  }

  close(): void {
    this.closed = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.channel?.close();
    void this.pc.close();
  }
}
