// werift as this project installs it (patches/werift+0.24.4.patch, applied by `npm ci`): its DTLS and SCTP
// handshakes start and retry as libwebrtc's do, so a packet lost or early on a busy machine costs a short wait, not
// a fixed 500 ms or 3 s, and their crypto is Node's native code with the local key parsed once, so a process's first
// handshakes are not slowed by tweetnacl's JavaScript (bench/README.md, "A lean server": joins). Two real werift connections in this process,
// linked as the headless peer links them; a wrapper on each side's ICE connection watches, and where a test says
// so drops, what each side sends.
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { RTCPeerConnection } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';

/** A datagram one side sent, as its ICE connection was asked to send it. */
interface Sent {
  at: number;
  data: Buffer;
}

/** DTLS record content types and handshake types (RFC 6347): a ClientHello is a handshake record of type 1. */
const isHandshake = (data: Buffer, type: number) => data.length > 13 && data[0] === 22 && data[13] === type;
const isClientHello = (data: Buffer) => isHandshake(data, 1);
/** A ClientHello's cookie length: 0 in the first one, the server's cookie length in the one that answers it. */
const cookieLength = (data: Buffer) => {
  // Record header 13, handshake header 12, version 2, random 32, then the session id (length-prefixed).
  const sessionIdAt = 13 + 12 + 2 + 32;
  return data[sessionIdAt + 1 + data[sessionIdAt]!]!;
};
/** Application data: after the handshake, what DTLS carries is SCTP (the first packet the SCTP client sends: INIT). */
const isApplicationData = (data: Buffer) => data[0] === 23;

type Connection = { send: (data: Buffer) => Promise<void> };
type Transport = { iceTransport: { connection: Connection }; start: () => Promise<void> };
const transportOf = (pc: RTCPeerConnection) => pc.dtlsTransports[0] as unknown as Transport;

/** Records what `pc` sends from now on; `drop` may keep a datagram from leaving (a network that loses it). */
function watch(pc: RTCPeerConnection, drop: (data: Buffer, sent: Sent[]) => boolean = () => false): Sent[] {
  const connection = transportOf(pc).iceTransport.connection;
  const send = connection.send;
  const sent: Sent[] = [];
  connection.send = async (data) => {
    const dropped = drop(data, sent);
    sent.push({ at: performance.now(), data });
    if (!dropped) await send(data);
  };
  return sent;
}

const pcs: RTCPeerConnection[] = [];
afterEach(async () => {
  await Promise.all(pcs.splice(0).map((pc) => pc.close()));
});

/**
 * An offerer (ICE controlling: DTLS server, SCTP client) and an answerer (DTLS client, SCTP server) with a negotiated
 * data channel, described to each other; `beforeConnect` runs once both have their transports, before ICE starts.
 * Resolves when the channel is open on both sides.
 */
async function connect(
  beforeConnect: (offerer: RTCPeerConnection, answerer: RTCPeerConnection) => void,
): Promise<{ offerer: RTCPeerConnection; answerer: RTCPeerConnection }> {
  const offerer = new RTCPeerConnection({ iceServers: [] });
  const answerer = new RTCPeerConnection({ iceServers: [] });
  pcs.push(offerer, answerer);
  const opened = [offerer, answerer].map((pc) => {
    const channel = pc.createDataChannel('mesh', { negotiated: true, id: 0 });
    return new Promise<void>((resolve) => (channel.onopen = () => resolve()));
  });
  const candidates: Record<'offerer' | 'answerer', object[]> = { offerer: [], answerer: [] };
  offerer.onicecandidate = ({ candidate }) => void (candidate && candidates.offerer.push(candidate));
  answerer.onicecandidate = ({ candidate }) => void (candidate && candidates.answerer.push(candidate));
  await offerer.setLocalDescription(await offerer.createOffer());
  await answerer.setRemoteDescription(offerer.localDescription!);
  await answerer.setLocalDescription(await answerer.createAnswer());
  beforeConnect(offerer, answerer);
  await offerer.setRemoteDescription(answerer.localDescription!);
  for (const candidate of candidates.offerer) await answerer.addIceCandidate(candidate);
  for (const candidate of candidates.answerer) await offerer.addIceCandidate(candidate);
  await Promise.all(opened);
  return { offerer, answerer };
}

describe('werift handshakes (patched as libwebrtc does them)', () => {
  it('answers a ClientHello that came before its own DTLS started, so the client never has to send it again', async () => {
    let answererSent: Sent[] = [];
    await connect((offerer, answerer) => {
      answererSent = watch(answerer);
      // The DTLS server starts 200 ms after its ICE connected: the ClientHello, sent as soon as the client's ICE
      // connected, is there first. Unpatched werift dropped it, and the client sent it again 500 ms later.
      const transport = transportOf(offerer);
      const start = transport.start.bind(transport);
      transport.start = async () => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        return start();
      };
    });
    const hellos = answererSent.filter((sent) => isClientHello(sent.data));
    expect(hellos.map((sent) => cookieLength(sent.data))).toEqual([0, 20]);
  });

  it('sends the first ClientHello as soon as ICE is connected (unpatched werift waited 100 ms)', async () => {
    const events: string[] = [];
    await connect((_offerer, answerer) => {
      watch(answerer, (data) => {
        if (isClientHello(data) && !events.includes('ClientHello')) events.push('ClientHello');
        return false;
      });
      answerer.iceConnectionStateChange.subscribe((state) => {
        if (state !== 'connected') return;
        events.push('ICE connected');
        setTimeout(() => events.push('50 ms later'), 50);
      });
    });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(events).toContain('ICE connected');
    expect(events.indexOf('ClientHello')).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('ClientHello')).toBeLessThan(events.indexOf('50 ms later'));
  });

  it('sends a lost SCTP INIT again after 1 s (dcsctp), not 3 s', async () => {
    let offererSent: Sent[] = [];
    await connect((offerer) => {
      // The SCTP client's first packet after the handshake is its INIT: lose it once.
      offererSent = watch(
        offerer,
        (data, sent) => isApplicationData(data) && !sent.some((earlier) => isApplicationData(earlier.data)),
      );
    });
    const [init, again] = offererSent.filter((sent) => isApplicationData(sent.data));
    const waitedMs = again!.at - init!.at;
    expect(waitedMs).toBeGreaterThanOrEqual(990);
    // A timer fires late on a busy machine, never early; unpatched werift waited 3 s.
    expect(waitedMs).toBeLessThan(2500);
  });
});

describe("werift's DTLS crypto (patched: Node's crypto, the local key parsed once)", () => {
  it('makes each X25519 key pair and secret in Node, and signs every handshake with one parsed key', async () => {
    const calls: string[] = [];
    const signingKeys: unknown[] = [];
    const { diffieHellman, generateKeyPairSync } = crypto;
    const sign = crypto.Sign.prototype.sign;
    // werift imports these from "crypto" by name: syncBuiltinESMExports makes its bindings see the wrappers.
    crypto.diffieHellman = (options) => {
      calls.push(`${options.privateKey.asymmetricKeyType} secret`);
      return diffieHellman(options);
    };
    crypto.generateKeyPairSync = ((type: 'x25519', options?: undefined) => {
      calls.push(`${type} key pair`);
      return generateKeyPairSync(type, options);
    }) as typeof generateKeyPairSync;
    crypto.Sign.prototype.sign = function (this: crypto.Sign, ...args: Parameters<typeof sign>) {
      signingKeys.push(args[0]);
      return sign.apply(this, args);
    } as unknown as typeof sign;
    syncBuiltinESMExports();
    try {
      await connect(() => {});
      await connect(() => {});
    } finally {
      Object.assign(crypto, { diffieHellman, generateKeyPairSync });
      crypto.Sign.prototype.sign = sign;
      syncBuiltinESMExports();
    }
    // Two handshakes, each side one ephemeral key pair and one shared secret (tweetnacl's JavaScript before).
    expect(calls.sort()).toEqual([...Array(4).fill('x25519 key pair'), ...Array(4).fill('x25519 secret')]);
    // Each handshake signs twice (the server's key exchange, the client's certificate verify), with one key object
    // for the process's one certificate; werift passed the PEM text, which OpenSSL parsed again each time.
    expect(signingKeys).toHaveLength(4);
    expect(signingKeys.every((key) => key instanceof crypto.KeyObject)).toBe(true);
    expect(new Set(signingKeys).size).toBe(1);
  });
});
