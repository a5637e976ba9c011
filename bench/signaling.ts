// Signaling benchmarks (issue 6):
//   npx tsx bench/signaling.ts
// 1. Relay: 50 socket.io-client sockets in the global room each relay signals to random others as fast as acks
//    allow (a window of WINDOW in flight per socket) for DURATION_S; messages/s and p95 latency (send → the
//    target's `signal` event), against a bare Socket.IO server that relays to a socket id with no checks
//    (bench/bare-relay-server.ts), in the same run, each server in its own process.
// 2. Join to open: N headless Chromium pages open /rooms/global together; per page, the time from its join ack
//    to data channels open with all N-1 others; p50/p95 for N = 2 and 8, over ROUNDS rounds; and for N = 8 the
//    phases of every link (the phases of bench/werift-joins.ts), from each page's RTCPeerConnection, which the bench
//    wraps in the page to note when each step happened (RECORD_LINKS below; the app is not changed). A page whose
//    links are not all open after JOIN_DEADLINE_MS is counted apart, with what it saw (peer states, link steps).
import { mkdtemp, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { buildClient, launchChromium } from '../tests/support/browser.ts';
import { startServer } from '../tests/support/server-process.ts';
import {
  RELAY_LOAD_LIMITS,
  type RelayResult,
  drive,
  joinedGuestSockets,
  quantile,
  relayThroughMesh,
} from './relay-load.ts';
import { PHASES, type Phases, emptyPhases } from './werift-joins.ts';

const SOCKETS = 50;
const WINDOW = 4;
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function relayOurs(): Promise<RelayResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-signal-'));
  // The rate limit is per socket and far above what one socket sends here; raise it so the bench measures the relay.
  const server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    CLIENT_DIST_DIR: path.join(dir, 'none'),
    LOG_LEVEL: 'info',
    SOCKET_EVENTS_PER_SECOND: '10000',
  });
  try {
    const { sockets, peers } = await joinedGuestSockets(server.url, SOCKETS);
    const result = await drive({
      sockets,
      addresses: peers,
      send: relayThroughMesh,
      seconds: DURATION_S,
      window: WINDOW,
    });
    sockets.forEach((s) => s.disconnect());
    return result;
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

/** The floor: Socket.IO relaying to a socket id with no checks, in a child process like the real server. */
async function relayBare(): Promise<RelayResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'bare-relay-server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        const match = /listening on (http:\/\/[\d.:]+)/.exec(chunk.toString());
        if (match?.[1]) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`bare relay exited with ${code}`)));
    });
    const sockets = await Promise.all(
      Array.from({ length: SOCKETS }, async () => {
        const socket = io(url, { transports: ['websocket'], forceNew: true });
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        return socket;
      }),
    );
    const result = await drive({
      sockets,
      addresses: sockets.map((s) => s.id ?? ''),
      send: async (socket, to, data) => {
        await socket.emitWithAck('relay', { to, data });
      },
      seconds: DURATION_S,
      window: WINDOW,
    });
    sockets.forEach((s) => s.disconnect());
    return result;
  } finally {
    child.kill('SIGTERM');
  }
}

/** A page's RTCPeerConnection timeline, keyed across pages by the offer's ICE username fragment. */
interface PageLink {
  ufrag?: string;
  created: number;
  offerSent?: number;
  offerReceived?: number;
  answerSent?: number;
  answerReceived?: number;
  iceConnected?: number;
  open?: number;
}

/**
 * Runs in each page before the app: RTCPeerConnection, as the app's PeerLink calls it, notes when each step of a
 * connection's first negotiation happened (window.__links), as PeerLink's own timeline does for werift.
 */
const RECORD_LINKS = `(() => {
  const Native = window.RTCPeerConnection;
  const links = (window.__links = []);
  const ufragOf = (sdp) => /a=ice-ufrag:(\\S+)/.exec(sdp)?.[1];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      const t = { created: performance.now() };
      this.__t = t;
      links.push(t);
      this.addEventListener('iceconnectionstatechange', () => {
        if (this.iceConnectionState === 'connected' || this.iceConnectionState === 'completed') t.iceConnected ??= performance.now();
      });
    }
    async setLocalDescription(...args) {
      const result = await super.setLocalDescription(...args);
      const local = this.localDescription;
      if (local?.type === 'offer') { this.__t.offerSent ??= performance.now(); this.__t.ufrag ??= ufragOf(local.sdp); }
      if (local?.type === 'answer') this.__t.answerSent ??= performance.now();
      return result;
    }
    setRemoteDescription(description) {
      if (description?.type === 'offer') { this.__t.offerReceived ??= performance.now(); this.__t.ufrag ??= ufragOf(description.sdp); }
      if (description?.type === 'answer') this.__t.answerReceived ??= performance.now();
      return super.setRemoteDescription(description);
    }
    createDataChannel(...args) {
      const channel = super.createDataChannel(...args);
      channel.addEventListener('open', () => (this.__t.open ??= performance.now()));
      return channel;
    }
  };
})()`;

/** The phases of every link of a round, from the offering page's timeline and, for the answer, the other page's. */
function pagePhases(pages: { joinedAt: number; links: PageLink[] }[], phases: Phases): void {
  const answering = new Map<string, PageLink>();
  for (const { links } of pages)
    for (const link of links) if (link.ufrag && link.offerReceived !== undefined) answering.set(link.ufrag, link);
  for (const { joinedAt, links } of pages)
    for (const t of links) {
      if (t.offerSent === undefined || t.answerReceived === undefined || !t.ufrag) continue;
      const other = answering.get(t.ufrag);
      phases['join ack to link made'].push(t.created - joinedAt);
      phases['making the offer'].push(t.offerSent - t.created);
      phases['offer sent to answer back'].push(t.answerReceived - t.offerSent);
      if (other?.answerSent !== undefined && other.offerReceived !== undefined)
        phases['  of which the other side answering'].push(other.answerSent - other.offerReceived);
      if (t.open !== undefined) phases['answer to channel open (ICE, DTLS, SCTP)'].push(t.open - t.answerReceived);
      if (t.iceConnected !== undefined) {
        phases['  of which answer to ICE connected'].push(t.iceConnected - t.answerReceived);
        if (t.open !== undefined)
          phases['  of which ICE connected to channel open (DTLS, SCTP)'].push(t.open - t.iceConnected);
      }
    }
}

/** How long a round waits for a page's links before it reports what that page sees instead. */
const JOIN_DEADLINE_MS = 30_000;

/** A page whose links were not all open by the deadline, as it saw itself then. */
interface StuckPage {
  joined: boolean;
  /** Each other peer's state on the Rooms screen (`data-state` of `peer-state`). */
  peers: (string | null)[];
  /** Each RTCPeerConnection's steps reached, by name (created, offerSent, answerReceived, iceConnected, open, ...). */
  links: string[];
}

async function joinToOpen(peers: number, phases: Phases = emptyPhases(), stuck: StuckPage[] = []): Promise<number[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-join-'));
  await buildClient(path.join(dir, 'dist'), 'bench');
  // Each page is a new guest from 127.0.0.1: three rounds of eight pass the default 20 guests per address per hour.
  const server = await startServer(
    { DATA_DIR: path.join(dir, 'data'), CLIENT_DIST_DIR: path.join(dir, 'dist'), ...RELAY_LOAD_LIMITS },
    120_000,
  );
  const durations: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // A fresh browser per round: reusing one across rounds lost pages mid-measurement ("Target closed").
      const browser = await launchChromium('no-gpu');
      try {
        const pages = await Promise.all(
          Array.from({ length: peers }, async () => {
            const context = await browser.newContext();
            await context.addInitScript(RECORD_LINKS);
            const page = await context.newPage();
            await page.goto(`${server.url}/rooms`);
            return page;
          }),
        );
        await Promise.all(pages.map((page) => page.goto(`${server.url}/rooms/global`)));
        const results = await Promise.all(
          pages.map(
            (page) =>
              // A string: it runs in the page (this file has no DOM types) and tsx must not wrap it in helpers.
              // Past the deadline a page answers what it sees instead: whether it joined, each peer's state on the
              // Rooms screen, and which steps each of its connections reached.
              page.evaluate(`new Promise((resolve) => {
                const started = performance.now();
                const check = () => {
                  const joined = performance.getEntriesByName('mesh:joined').at(-1);
                  const open = document.querySelectorAll('[data-testid="peer-state"][data-state="open"]').length;
                  if (joined && open >= ${peers - 1}) resolve(performance.now() - joined.startTime);
                  else if (performance.now() - started > ${JOIN_DEADLINE_MS})
                    resolve({
                      joined: Boolean(joined),
                      peers: [...document.querySelectorAll('[data-testid="peer-state"]')].map((e) => e.getAttribute('data-state')),
                      links: (window.__links ?? []).map((t) => Object.keys(t).filter((k) => k !== 'ufrag').join(' ')),
                    });
                  else setTimeout(check, 10);
                };
                check();
              })`) as Promise<number | StuckPage>,
          ),
        );
        for (const result of results)
          if (typeof result === 'number') durations.push(result);
          else stuck.push(result);
        pagePhases(
          (
            (await Promise.all(
              pages.map((page) =>
                page.evaluate(
                  `({ joinedAt: performance.getEntriesByName('mesh:joined').at(-1)?.startTime, links: window.__links })`,
                ),
              ),
            )) as { joinedAt?: number; links: PageLink[] }[]
          ).filter((page): page is { joinedAt: number; links: PageLink[] } => page.joinedAt !== undefined),
          phases,
        );
      } finally {
        await browser.close();
      }
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
  return durations;
}

async function relayBench() {
  const bare = await relayBare();
  const ours = await relayOurs();
  console.log(`1. relay between ${SOCKETS} sockets for ${DURATION_S} s (window ${WINDOW} per socket):`);
  console.log(
    `   bare Socket.IO: ${bare.perSecond.toFixed(0)} msg/s, p50 ${bare.p50.toFixed(2)} ms, p95 ${bare.p95.toFixed(2)} ms`,
  );
  console.log(
    `   /mesh relay:    ${ours.perSecond.toFixed(0)} msg/s, p50 ${ours.p50.toFixed(2)} ms, p95 ${ours.p95.toFixed(2)} ms`,
  );
  console.log(
    `   ratio (ours / bare): ${(ours.perSecond / bare.perSecond).toFixed(2)} in throughput, ${(ours.p95 / bare.p95).toFixed(2)} in p95 latency`,
  );
}

async function joinBench() {
  for (const peers of [2, 8]) {
    const phases = emptyPhases();
    const load = loadavg()[0]!;
    const stuck: StuckPage[] = [];
    const durations = await joinToOpen(peers, phases, stuck);
    console.log(
      `2. join → all data channels open, ${peers} pages, ${durations.length} samples, ${stuck.length} not all open after ${JOIN_DEADLINE_MS / 1000} s: p50 ${quantile(durations, 0.5).toFixed(0)} ms, p95 ${quantile(durations, 0.95).toFixed(0)} ms (load average ${load.toFixed(1)} to ${loadavg()[0]!.toFixed(1)})`,
    );
    for (const page of stuck)
      console.log(
        `   not all open: joined ${page.joined}, peers ${page.peers.join(', ')}; links: ${page.links.join(' | ')}`,
      );
    if (peers < 8) continue;
    console.log(`   phases of every link (${phases['making the offer'].length} links), p50 / p95:`);
    for (const phase of PHASES)
      console.log(
        `     ${phase.padEnd(54)} ${quantile(phases[phase], 0.5).toFixed(0).padStart(5)} / ${quantile(phases[phase], 0.95).toFixed(0).padStart(5)} ms`,
      );
  }
}

// BENCH_PART=relay or join runs one half.
const part = process.env.BENCH_PART ?? 'all';
if (part !== 'join') await relayBench();
if (part !== 'relay') await joinBench();
