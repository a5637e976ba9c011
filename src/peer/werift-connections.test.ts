import { RTCDtlsTransport } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import { type LinkSignal, PeerLink } from '../shared/rtc/peer-link.ts';
import { WeriftConnections } from './werift-connections.ts';

const links: PeerLink[] = [];
afterEach(() => links.splice(0).forEach((link) => link.close()));

/** Two PeerLinks through `connections`, signalling to each other directly; resolves once both channels are open. */
function linkPair(connections: WeriftConnections): Promise<readonly [PeerLink, PeerLink]> {
  const ends: Record<'a' | 'b', PeerLink | null> = { a: null, b: null };
  const relay = (to: 'a' | 'b') => (signal: LinkSignal) => void ends[to]?.signal(signal).catch(() => undefined);
  return new Promise((resolve) => {
    const onChange = () => {
      if (ends.a?.state().channel === 'open' && ends.b?.state().channel === 'open') resolve([ends.a, ends.b]);
    };
    ends.a = new PeerLink('b', false, connections.create, [], relay('b'), onChange);
    ends.b = new PeerLink('a', true, connections.create, [], relay('a'), onChange);
    links.push(ends.a, ends.b);
  });
}

const fingerprintOf = (link: PeerLink) =>
  /^a=fingerprint:sha-256 (\S+)/m.exec(link.pc.localDescription?.sdp ?? '')?.[1];

describe('WeriftConnections', () => {
  it("makes the peer's certificate once, at start, and every link's DTLS uses it", async () => {
    const connections = await WeriftConnections.create();
    const fingerprint = connections.certificate.getFingerprints()[0]!.value;
    const pairs = await Promise.all([linkPair(connections), linkPair(connections), linkPair(connections)]);

    // Six links opened, each describing the one certificate made before the first of them.
    expect(connections.made).toBe(6);
    expect(pairs.flat().map(fingerprintOf)).toEqual(Array(6).fill(fingerprint));
    // werift made no certificate of its own (its fallback, made on a process's first connection, cold).
    expect(RTCDtlsTransport.localCertificate).toBeUndefined();
  });

  it('warms up with one loopback connection whose channel opens, then closes it', async () => {
    const connections = await WeriftConnections.create();
    expect(await connections.warmUp()).toBe(true);
    expect(connections.made).toBe(2);
    expect(RTCDtlsTransport.localCertificate).toBeUndefined();
  });
});
