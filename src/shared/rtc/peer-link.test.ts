import { RTCPeerConnection } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import { type LinkSignal, type LinkTimeline, type PeerConnectionLike, PeerLink } from './peer-link.ts';

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
