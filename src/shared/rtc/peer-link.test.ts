import { RTCPeerConnection } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_ICE_SERVERS } from './default-ice-servers.ts';
import { type IceServer, type LinkSignal, type LinkTimeline, type PeerConnectionLike, PeerLink } from './peer-link.ts';

const createPeerConnection = (config: { iceServers: { urls: string | string[] }[] }) =>
  new RTCPeerConnection({ iceServers: config.iceServers }) as unknown as PeerConnectionLike;

const links: PeerLink[] = [];
afterEach(() => links.splice(0).forEach((link) => link.close()));

describe('PeerLink timeline', () => {
  it('records each step of the first connection in order, on the offering side and on the answering side', async () => {
    const ends: Record<'a' | 'b', PeerLink | null> = { a: null, b: null };
    // Signals cross as the server would relay them, one at a time in order.
    const relay = (to: 'a' | 'b') => (signal: LinkSignal) => void ends[to]?.signal(signal).catch(() => undefined);
    let opened = 0;
    const bothOpen = new Promise<void>((resolve) => {
      const onChange = () => {
        const open = [ends.a, ends.b].filter((link) => link?.state().channel === 'open').length;
        if (open === 2 && opened++ === 0) resolve();
      };
      ends.a = new PeerLink('b', false, createPeerConnection, [], relay('b'), onChange);
      ends.b = new PeerLink('a', true, createPeerConnection, [], relay('a'), onChange);
    });
    links.push(ends.a!, ends.b!);
    await bothOpen;

    const offering: LinkTimeline = ends.a!.timeline;
    const answering: LinkTimeline = ends.b!.timeline;
    const inOrder = (...times: (number | undefined)[]) =>
      times.every((time, i) => time !== undefined && (i === 0 || time >= times[i - 1]!));
    expect(inOrder(offering.created, offering.offerSent, offering.answerReceived, offering.open)).toBe(true);
    expect(inOrder(answering.offerReceived, answering.answerSent, answering.open)).toBe(true);
    // Candidates follow the description they belong to: sent before it, the other side could only drop them.
    expect(inOrder(offering.offerSent, offering.firstCandidateSent)).toBe(true);
    expect(inOrder(answering.offerReceived, answering.firstCandidateReceived)).toBe(true);
    expect(inOrder(answering.answerSent, answering.firstCandidateSent)).toBe(true);
    expect(offering.offerReceived).toBeUndefined();
    expect(answering.offerSent).toBeUndefined();
    expect(offering.firstCandidateSent).toBeDefined();
    expect(answering.firstCandidateReceived).toBeDefined();
  });
});

/** Two linked ends; `mangle` rewrites each signal on its way (a network that loses or changes what it carries). */
function pairOf(iceServers: IceServer[], mangle: (signal: LinkSignal) => LinkSignal = (signal) => signal) {
  const ends: Record<'a' | 'b', PeerLink | null> = { a: null, b: null };
  const relay = (to: 'a' | 'b') => (signal: LinkSignal) => void ends[to]?.signal(mangle(signal)).catch(() => undefined);
  ends.a = new PeerLink('b', false, createPeerConnection, iceServers, relay('b'), () => {});
  ends.b = new PeerLink('a', true, createPeerConnection, iceServers, relay('a'), () => {});
  links.push(ends.a, ends.b);
  return [ends.a, ends.b] as const;
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

/** Every candidate's address replaced by one in TEST-NET-1 (RFC 5737), which nothing routes: no pair can work. */
function unreachableCandidates(signal: LinkSignal): LinkSignal {
  if ('description' in signal)
    return { description: { ...signal.description, sdp: signal.description.sdp.replace(/^a=candidate:.*\r\n/gm, '') } };
  return {
    candidates: signal.candidates.map((candidate) =>
      candidate?.candidate
        ? { ...candidate, candidate: candidate.candidate.replace(/^((?:\S+ ){4})\S+/, '$1192.0.2.1') }
        : candidate,
    ),
  };
}

describe('werift with no ICE servers configured', () => {
  it("asks no STUN server (werift 0.24.4 asked Google's anyway, which patches/werift+0.24.4.patch removes)", async () => {
    // shinyoshiaki/werift-webrtc#691: the fallback made every link wait for a name lookup and a STUN answer, up to
    // 5 s each, even with `ICE_SERVERS=[]`; README.md, "Connecting peers: STUN and TURN".
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.createDataChannel('probe');
    await pc.setLocalDescription(await pc.createOffer());
    expect(pc.iceTransports.map((transport) => transport.connection.stunServer)).toEqual([undefined]);
    await pc.close();

    const configured = new RTCPeerConnection({ iceServers: [{ urls: 'stun:127.0.0.1:3478' }] });
    configured.createDataChannel('probe');
    await configured.createOffer();
    expect(configured.iceTransports.map((transport) => transport.connection.stunServer)).toEqual([['127.0.0.1', 3478]]);
    await configured.close();
  });
});

describe('PeerLink without a route', () => {
  it('opens with the default STUN servers configured, whether they answer or cannot be reached', async () => {
    const [a, b] = pairOf(DEFAULT_ICE_SERVERS);
    expect(await until(() => a.state().channel === 'open' && b.state().channel === 'open', 20_000)).toBe(true);
    expect(a.state().noRoute).toBeUndefined();
  }, 30_000);

  it('says there is no route when ICE fails, and renegotiates only as often as its watchdog allows', async () => {
    const [a, b] = pairOf([], unreachableCandidates);
    expect(await until(() => Boolean(a.state().noRoute && b.state().noRoute), 15_000)).toBe(true);
    const restarts = a.restarts;
    // Failures here come within milliseconds; each one restarting ICE would renegotiate hundreds of times a second.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(a.restarts - restarts).toBeLessThanOrEqual(1);
    expect(a.state()).toMatchObject({ channel: 'connecting', noRoute: true });
    expect(b.state().channel).not.toBe('open');
  }, 30_000);
});

describe('PeerLink watchdog', () => {
  it('does not restart ICE while ICE is connected and the DTLS handshake is still under way', async () => {
    // The answer claims the answering side is DTLS-passive while it acts as the client: both sides wait for the other's
    // ClientHello, so ICE connects and the handshake goes on (retransmitting) far past the 4 s watchdog.
    const [a] = pairOf([], (signal) =>
      'description' in signal && signal.description.type === 'answer'
        ? {
            description: {
              ...signal.description,
              sdp: signal.description.sdp.replace(/a=setup:active/g, 'a=setup:passive'),
            },
          }
        : signal,
    );
    expect(await until(() => a.pc.iceConnectionState === 'connected', 10_000)).toBe(true);
    // Past the first watchdog (4 s after the link was made) with the channel still not open.
    await new Promise((resolve) => setTimeout(resolve, 4500));
    expect(a.state().channel).not.toBe('open');
    expect(a.pc.iceConnectionState).toBe('connected');
    expect(a.restarts).toBe(0);
  }, 20_000);
});
