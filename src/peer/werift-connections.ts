// The headless peer's WebRTC connections, in werift: one DTLS certificate per peer, made when the peer starts and
// given to every connection it makes (as a browser page may with RTCPeerConnection.generateCertificate and the
// `certificates` option), and one loopback connection at start, so that a peer's first room join does not pay for
// what is done once per process: the certificate, werift's code compiled on first use, its crypto set up. Without
// them the first connection of a process made werift's certificate and ran every step cold (bench/README.md,
// "A lean server": the first, cold round).
import {
  HashAlgorithm,
  NamedCurveAlgorithm,
  RTCCertificate,
  RTCPeerConnection,
  SignatureAlgorithm,
  createSelfSignedCertificate,
} from 'werift';
import type { IceServer, PeerConnectionLike } from '../shared/rtc/peer-link.ts';

/** A warm-up connection that has not opened by then is given up (the peer goes on; its joins are cold). */
const WARM_UP_TIMEOUT_MS = 10_000;

export class WeriftConnections {
  /** Connections made with this peer's certificate (create), for the tests and the bench. */
  made = 0;

  private constructor(readonly certificate: RTCCertificate) {}

  /**
   * Makes the peer's certificate: ECDSA P-256 with SHA-256, what werift makes by default and what browsers make, so
   * every DTLS handshake signs with the same key (its fingerprint goes in every description).
   */
  static async create(): Promise<WeriftConnections> {
    const { keyPem, certPem, signatureHash } = await createSelfSignedCertificate(
      { signature: SignatureAlgorithm.ecdsa_3, hash: HashAlgorithm.sha256_4 },
      NamedCurveAlgorithm.secp256r1_23,
    );
    return new WeriftConnections(new RTCCertificate(keyPem, certPem, signatureHash));
  }

  /**
   * The room's PeerConnectionFactory. With no ICE servers configured werift gathers host candidates only
   * (patches/werift+0.24.4.patch: werift itself would ask Google's STUN server, see README.md, "Connecting peers:
   * STUN and TURN").
   */
  readonly create = (config: { iceServers: IceServer[] }): PeerConnectionLike =>
    this.connection(config.iceServers) as unknown as PeerConnectionLike;

  private connection(iceServers: IceServer[]) {
    this.made++;
    return new RTCPeerConnection({ iceServers, certificates: [this.certificate] });
  }

  /**
   * Two connections of this process joined by a data channel, then closed: ICE, DTLS (with this certificate, so
   * werift parses it and sets up its key once) and SCTP run once before the first room join. Resolves false, without
   * throwing, when the channel did not open in time: the peer still works, its first join is only slower.
   */
  async warmUp(): Promise<boolean> {
    const a = this.connection([]);
    const b = this.connection([]);
    a.onicecandidate = ({ candidate }) => void (candidate && b.addIceCandidate(candidate).catch(() => undefined));
    b.onicecandidate = ({ candidate }) => void (candidate && a.addIceCandidate(candidate).catch(() => undefined));
    const channel = a.createDataChannel('warm-up', { negotiated: true, id: 0 });
    b.createDataChannel('warm-up', { negotiated: true, id: 0 });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const open = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), WARM_UP_TIMEOUT_MS);
      channel.onopen = () => resolve(true);
    });
    try {
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription!);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription!);
      return await open;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
      await Promise.all([a.close(), b.close()]);
    }
  }
}

/** The certificate made and one loopback connection run: what a headless peer does while it signs in and loads. */
export async function readyWeriftConnections(): Promise<{ connections: WeriftConnections; warm: boolean }> {
  const connections = await WeriftConnections.create();
  return { connections, warm: await connections.warmUp() };
}
