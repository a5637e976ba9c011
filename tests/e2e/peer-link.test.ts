// The app's PeerLink in headless Chromium: two links in one page, their signals carried by the test (so it can
// lose some): the channel opens both ways without glare, and a link whose first offer was lost recovers by
// itself; it opens with the default public STUN servers configured (reachable or not), and says there is no route
// when ICE can find none. The rooms test covers the same class over the real server.
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ICE_SERVERS } from '../../src/shared/rtc/default-ice-servers.ts';
import { launchChromium } from '../support/browser.ts';
import { ROOT } from '../support/server-process.ts';

let browser: Browser;
let page: Page;

beforeAll(async () => {
  browser = await launchChromium('no-gpu');
  page = await browser.newPage();
  // peer-link.ts and what it imports, bundled into one script that puts the class on window.
  const bundle = await build({
    stdin: {
      contents: "import { PeerLink } from './src/shared/rtc/peer-link.ts'; window.PeerLink = PeerLink;",
      resolveDir: ROOT,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    write: false,
  });
  await page.addScriptTag({ type: 'module', content: bundle.outputFiles[0]!.text });
  await page.waitForFunction(() => 'PeerLink' in window);
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

interface PairResult {
  openMs: number | null;
  restarts: [number, number];
  received: [string[], string[]];
  dropped: number;
}

/** Two links in the page; the first `drop.count` descriptions of type `drop.type` are lost on the way. */
function pair(drop: { type: 'offer' | 'answer'; count: number }): Promise<PairResult> {
  return page.evaluate(async (drop) => {
    type Signal = { description: { type: string; sdp: string } } | { candidates: unknown[] };
    interface Link {
      signal(signal: Signal): Promise<void>;
      state(): { channel: string };
      restarts: number;
      onMessage: (text: string) => void;
      send(text: string): void;
      close(): void;
    }
    type Factory = (config: { iceServers: unknown[] }) => unknown;
    const LinkClass = (
      window as unknown as {
        PeerLink: new (
          id: string,
          polite: boolean,
          make: Factory,
          ice: unknown[],
          send: (s: Signal) => void,
          changed: () => void,
        ) => Link;
      }
    ).PeerLink;
    const make: Factory = (config) => new RTCPeerConnection(config as RTCConfiguration);
    let dropped = 0;
    const links: Link[] = [];
    const deliver = (to: number) => (signal: Signal) => {
      if ('description' in signal && signal.description.type === drop.type && dropped < drop.count) {
        dropped++;
        return;
      }
      // Asynchronous, like a relay through a server.
      setTimeout(() => void links[to]?.signal(signal).catch(() => undefined), 5);
    };
    const started = performance.now();
    links.push(new LinkClass('b', false, make, [], deliver(1), () => {}));
    links.push(new LinkClass('a', true, make, [], deliver(0), () => {}));
    const received: [string[], string[]] = [[], []];
    links.forEach((link, i) => {
      link.onMessage = (text) => received[i]?.push(text);
    });
    let openMs: number | null = null;
    while (performance.now() - started < 20_000) {
      if (links.every((link) => link.state().channel === 'open')) {
        openMs = performance.now() - started;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (openMs !== null) {
      links[0]?.send('from the impolite side');
      links[1]?.send('from the polite side');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const result = {
      openMs,
      restarts: [links[0]?.restarts ?? 0, links[1]?.restarts ?? 0] as [number, number],
      received,
      dropped,
    };
    links.forEach((link) => link.close());
    return result;
  }, drop);
}

describe('PeerLink in Chromium', () => {
  it('opens one data channel both ways with one offer and carries messages', async () => {
    for (let round = 0; round < 5; round++) {
      const result = await pair({ type: 'offer', count: 0 });
      expect(result.openMs).not.toBeNull();
      expect(result.restarts).toEqual([0, 0]);
      expect(result.received).toEqual([['from the polite side'], ['from the impolite side']]);
    }
  }, 60_000);

  it.each(['offer', 'answer'] as const)(
    'recovers by itself when the first %s is lost on the way',
    async (type) => {
      const result = await pair({ type, count: 1 });
      expect(result.dropped).toBe(1);
      expect(result.openMs).not.toBeNull();
      // The impolite side sent its offer again after its connect timeout (4 s).
      expect(result.restarts[0]).toBeGreaterThanOrEqual(1);
      expect(result.openMs).toBeGreaterThan(3500);
      expect(result.received).toEqual([['from the polite side'], ['from the impolite side']]);
    },
    60_000,
  );
});

interface RouteResult {
  openMs: number | null;
  noRouteMs: number | null;
  restarts: number;
}

/**
 * Two links in the page with `iceServers`; with `unreachable`, every candidate's address is replaced on the way by
 * one in TEST-NET-1 (RFC 5737), which nothing routes, so ICE can find no working pair, as between two strict NATs.
 */
function routePair(options: { iceServers: unknown[]; unreachable: boolean; limitMs: number }): Promise<RouteResult> {
  return page.evaluate(async ({ iceServers, unreachable, limitMs }) => {
    type Signal = { description: { type: string; sdp: string } } | { candidates: ({ candidate?: string } | null)[] };
    interface Link {
      signal(signal: Signal): Promise<void>;
      state(): { channel: string; noRoute?: boolean };
      restarts: number;
      close(): void;
    }
    type Factory = (config: { iceServers: unknown[] }) => unknown;
    const LinkClass = (
      window as unknown as {
        PeerLink: new (
          id: string,
          polite: boolean,
          make: Factory,
          ice: unknown[],
          send: (s: Signal) => void,
          changed: () => void,
        ) => Link;
      }
    ).PeerLink;
    const make: Factory = (config) => new RTCPeerConnection(config as RTCConfiguration);
    const mangle = (signal: Signal): Signal => {
      if (!unreachable) return signal;
      if ('description' in signal)
        return {
          description: { ...signal.description, sdp: signal.description.sdp.replace(/^a=candidate:.*\r\n/gm, '') },
        };
      return {
        candidates: signal.candidates.map((c) =>
          c?.candidate ? { ...c, candidate: c.candidate.replace(/^((?:\S+ ){4})\S+/, '$1192.0.2.1') } : c,
        ),
      };
    };
    const links: Link[] = [];
    const deliver = (to: number) => (signal: Signal) =>
      setTimeout(() => void links[to]?.signal(mangle(signal)).catch(() => undefined), 5);
    const started = performance.now();
    links.push(new LinkClass('b', false, make, iceServers, deliver(1), () => {}));
    links.push(new LinkClass('a', true, make, iceServers, deliver(0), () => {}));
    const result: RouteResult = { openMs: null, noRouteMs: null, restarts: 0 };
    while (performance.now() - started < limitMs) {
      if (links.every((link) => link.state().channel === 'open')) {
        result.openMs = performance.now() - started;
        break;
      }
      if (links.every((link) => link.state().noRoute)) {
        result.noRouteMs = performance.now() - started;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    result.restarts = links[0]?.restarts ?? 0;
    links.forEach((link) => link.close());
    return result;
  }, options);
}

describe('PeerLink in Chromium, with STUN servers and without a route', () => {
  it('opens with the default public STUN servers configured, whether they answer or cannot be reached', async () => {
    const result = await routePair({ iceServers: DEFAULT_ICE_SERVERS, unreachable: false, limitMs: 20_000 });
    expect(result.noRouteMs).toBeNull();
    expect(result.openMs).not.toBeNull();
  }, 30_000);

  it('opens at once on local addresses with a STUN server that never answers', async () => {
    // TEST-NET-1 (RFC 5737): the address resolves (it is one) but nothing there answers, as behind a firewall.
    const result = await routePair({
      iceServers: [{ urls: 'stun:192.0.2.1:3478' }],
      unreachable: false,
      limitMs: 20_000,
    });
    expect(result.openMs).not.toBeNull();
    expect(result.openMs).toBeLessThan(5000);
  }, 30_000);

  it('says there is no route on both sides when no candidate pair can work', async () => {
    const result = await routePair({ iceServers: [], unreachable: true, limitMs: 60_000 });
    expect(result.openMs).toBeNull();
    expect(result.noRouteMs).not.toBeNull();
  }, 90_000);
});
