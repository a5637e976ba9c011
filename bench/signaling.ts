// Signaling benchmarks (issue 6):
//   npx tsx bench/signaling.ts
// 1. Relay: 50 socket.io-client sockets in the global room each relay signals to random others as fast as acks
//    allow (a window of WINDOW in flight per socket) for DURATION_S; messages/s and p95 latency (send → the
//    target's `signal` event), against a bare Socket.IO server that relays to a socket id with no checks
//    (bench/bare-relay-server.ts), in the same run, each server in its own process.
// 2. Join to open: N headless Chromium pages join the global room together; per page, the time from its join ack
//    to data channels open with all N-1 others; p50/p95 for N = 2 and 8 (BENCH_PAGES), over ROUNDS rounds, after one
//    2-page round that warms the server up. By default each page loads /rooms and settles, then all click the room's
//    link at the same moment (a client-side navigation, as a person does); BENCH_JOIN_NAVIGATION=goto navigates every
//    page to /rooms/global at once instead (the app reloads while joining: this bench's earlier way), `both`
//    alternates the two round by round. For N = 8, the phases of every link (those of bench/werift-joins.ts) from
//    each page's RTCPeerConnection, which the bench wraps in the page to note when each step happened (RECORD_LINKS
//    below; the app is not changed), and the offer/answer round trip split where it crossed each page's WebSocket
//    (bench/page-signals.ts); the server's event loop over each round (bench/loop-probe.mjs; BENCH_SERVER_PROFILE=<dir>
//    writes a CPU profile of the server too; BENCH_PAGE_PROFILE=<dir> one of the first page's renderer, from the clicks
//    or navigations to all open, each measured round). A page whose links are not all open after JOIN_DEADLINE_MS is counted
//    apart, with what it saw (peer states, link steps).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import type { Page } from 'playwright-core';
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
import {
  RECORD_WIRE,
  type RoundTrip,
  type WireRecord,
  busyMs,
  emptyRoundTrip,
  printRoundTrip,
  cpuSpent,
  relayRecord,
  roundTripParts,
  treeCpu,
} from './page-signals.ts';

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

/** How a round's pages get into the room (BENCH_JOIN_NAVIGATION). */
type Navigation = 'click' | 'goto';

/**
 * `click` (the default): each page loads the app at /rooms and settles (its service worker active, the network
 * idle, the room list shown), then every page clicks the room's link at the same moment, a client-side navigation,
 * as a person does. `goto`: every page navigates to /rooms/global at once, reloading the whole app while joining
 * (what this bench did before). `both` alternates the two round by round.
 */
const NAVIGATIONS: Navigation[] = (() => {
  const chosen = process.env.BENCH_JOIN_NAVIGATION ?? 'click';
  if (chosen === 'both') return ['click', 'goto'];
  if (chosen === 'click' || chosen === 'goto') return [chosen];
  throw new Error(`BENCH_JOIN_NAVIGATION is click, goto or both, not ${chosen}`);
})();

/** What a mode's rounds measured. */
interface JoinResult {
  durations: number[];
  phases: Phases;
  parts: RoundTrip;
  stuck: StuckPage[];
  /** Per page: from its click (or navigation) to its join ack. */
  toJoinAck: number[];
  /** Per page: its main thread's long tasks from its join ack to its last channel open, summed. */
  busy: number[];
  /** Signals sent over long polling instead of the WebSocket, all pages. */
  polled: number;
  /** Signals sent, all pages (each is a relay through the server: a message in, its ack and the signal out). */
  relays: number;
  /** The spread of the pages' clicks in a round (last minus first), ms. */
  clickSpread: number[];
  /** The spread of the pages' join acks in a round (last minus first), ms: an early page waits for the last. */
  joinAckSpread: number[];
  /** Per round, the CPU time the server and the browser (every page's processes) spent, from the clicks to all open. */
  cpu: { wallMs: number; serverMs: number; browserMs: number }[];
  /** Per round, the server's event loop from the first click (or navigation) to the last channel open. */
  server: ServerLoop[];
}

/** The server's event loop over a window: its utilisation, and how late its 20 ms ticks fired. */
interface ServerLoop {
  utilization: number;
  lateP50: number;
  lateMax: number;
}

function serverLoop(csv: string, from: number, to: number): ServerLoop {
  const ticks = csv
    .trim()
    .split('\n')
    .map((line) => line.split(',').map(Number) as [number, number, number])
    .filter(([t]) => t >= from && t <= to);
  const late = ticks.map(([, ms]) => ms);
  return {
    utilization: ticks.reduce((sum, [, , elu]) => sum + elu, 0) / Math.max(1, ticks.length),
    lateP50: quantile(late, 0.5),
    lateMax: Math.max(0, ...late),
  };
}

const emptyResult = (): JoinResult => ({
  durations: [],
  phases: emptyPhases(),
  parts: emptyRoundTrip(),
  stuck: [],
  toJoinAck: [],
  busy: [],
  polled: 0,
  relays: 0,
  clickSpread: [],
  joinAckSpread: [],
  cpu: [],
  server: [],
});

/** Waits until every page has loaded the app at /rooms and settled. */
async function settle(pages: Page[]): Promise<void> {
  await Promise.all(
    pages.map(async (page) => {
      await page.locator('[data-testid="room-link"][href="/rooms/global"]').waitFor();
      await page.evaluate(`navigator.serviceWorker?.ready`);
      await page.waitForLoadState('networkidle');
    }),
  );
}

/** Clicks the global room's link in every page at the same moment; resolves with that moment (epoch ms). */
async function clickIntoRoom(pages: Page[]): Promise<number> {
  // Far enough ahead for every page to be told before it comes; each page's timer fires on its own clock (the same
  // machine's), so the clicks fall within a few ms of each other when the renderers are idle.
  const at = Date.now() + 300 + 50 * pages.length;
  await Promise.all(
    pages.map((page) =>
      page.evaluate(`setTimeout(() => {
        window.__clickAt = performance.timeOrigin + performance.now();
        document.querySelector('[data-testid="room-link"][href="/rooms/global"]').click();
      }, ${at} - Date.now())`),
    ),
  );
  return at;
}

async function joinToOpen(peers: number, results: Record<Navigation, JoinResult>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-bench-join-'));
  await buildClient(path.join(dir, 'dist'), 'bench');
  // Each page is a new guest from 127.0.0.1: three rounds of eight pass the default 20 guests per address per hour.
  // The server's event loop, sampled (bench/loop-probe.mjs); BENCH_SERVER_PROFILE=<dir> adds a CPU profile of it.
  const probe = path.join(dir, 'loop.csv');
  const profile = process.env.BENCH_SERVER_PROFILE;
  const server = await startServer(
    {
      DATA_DIR: path.join(dir, 'data'),
      CLIENT_DIST_DIR: path.join(dir, 'dist'),
      ...RELAY_LOAD_LIMITS,
      BENCH_LOOP_PROBE: probe,
      NODE_OPTIONS: `--import=${path.join(import.meta.dirname, 'loop-probe.mjs')}`,
      ...(profile ? { BENCH_SERVER_PROFILE: path.resolve(profile) } : {}),
    },
    120_000,
  );
  try {
    // Round -1 warms the server up (2 pages, not counted): a server's first joins run its queries for the first time
    // (Prisma compiles each query's plan once), which a server in use has long done.
    for (let round = -1; round < ROUNDS; round++) {
      // Alternating, so that both modes meet the same load.
      for (const navigation of round % 2 ? [...NAVIGATIONS].reverse() : NAVIGATIONS) {
        if (round < 0 && navigation !== NAVIGATIONS[0]) continue;
        const result = round < 0 ? emptyResult() : results[navigation];
        const pageCount = round < 0 ? 2 : peers;
        // A fresh browser per round: reusing one across rounds lost pages mid-measurement ("Target closed").
        const browser = await launchChromium('no-gpu');
        try {
          const pages = await Promise.all(
            Array.from({ length: pageCount }, async () => {
              const context = await browser.newContext();
              await context.addInitScript(RECORD_LINKS);
              await context.addInitScript(RECORD_WIRE);
              const page = await context.newPage();
              await page.goto(`${server.url}/rooms`);
              return page;
            }),
          );
          // CPU of every process this bench started (the browser's and the server's), from the clicks (or the
          // navigations) to all open.
          let cpuBefore: Map<number, number>;
          let windowStart: number;
          const pageProfile =
            round >= 0 && process.env.BENCH_PAGE_PROFILE ? await pages[0]!.context().newCDPSession(pages[0]!) : null;
          await pageProfile?.send('Profiler.enable');
          await pageProfile?.send('Profiler.setSamplingInterval', { interval: 200 });
          if (navigation === 'click') {
            await settle(pages);
            await pageProfile?.send('Profiler.start');
            windowStart = await clickIntoRoom(pages);
            await new Promise((resolve) => setTimeout(resolve, windowStart - Date.now()));
            cpuBefore = await treeCpu(process.pid);
          } else {
            await pageProfile?.send('Profiler.start');
            cpuBefore = await treeCpu(process.pid);
            windowStart = Date.now();
            await Promise.all(
              pages.map((page) => page.evaluate(`localStorage.setItem('benchGotoAt', String(Date.now()))`)),
            );
            await Promise.all(pages.map((page) => page.goto(`${server.url}/rooms/global`)));
          }
          const outcomes = await Promise.all(
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
                    if (joined && open >= ${pageCount - 1}) resolve(performance.now() - joined.startTime);
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
          const cpuAfter = await treeCpu(process.pid);
          if (pageProfile) {
            const { profile: taken } = await pageProfile.send('Profiler.stop');
            const file = path.join(
              process.env.BENCH_PAGE_PROFILE!,
              `page-${pageCount}-${navigation}-${round}.cpuprofile`,
            );
            await writeFile(file, JSON.stringify(taken));
            console.log(`   (the first page's profile: ${file})`);
          }
          const serverPid = server.child.pid;
          result.cpu.push({
            wallMs: Date.now() - windowStart,
            serverMs: cpuSpent(cpuBefore, cpuAfter, (pid) => pid === serverPid),
            browserMs: cpuSpent(cpuBefore, cpuAfter, (pid) => pid !== serverPid && pid !== process.pid),
          });
          for (const outcome of outcomes)
            if (typeof outcome === 'number') result.durations.push(outcome);
            else result.stuck.push(outcome);
          const seen = (
            (await Promise.all(
              pages.map((page) =>
                page.evaluate(`({
                  origin: performance.timeOrigin,
                  joinedAt: performance.getEntriesByName('mesh:joined').at(-1)?.startTime,
                  startedAt: window.__clickAt ?? Number(localStorage.getItem('benchGotoAt')),
                  links: window.__links,
                  wire: window.__wire,
                })`),
              ),
            )) as { origin: number; joinedAt?: number; startedAt: number; links: PageLink[]; wire: WireRecord }[]
          ).filter((page): page is typeof page & { joinedAt: number } => page.joinedAt !== undefined);
          pagePhases(seen, result.phases);
          const epoch = (origin: number, t?: number) => (t === undefined ? undefined : origin + t);
          roundTripParts(
            seen.map((page) => ({
              wire: page.wire,
              joinAckAt: page.origin + page.joinedAt,
              links: page.links.map((link) => ({
                ufrag: link.ufrag,
                offerSent: epoch(page.origin, link.offerSent),
                offerReceived: epoch(page.origin, link.offerReceived),
                answerSent: epoch(page.origin, link.answerSent),
                answerReceived: epoch(page.origin, link.answerReceived),
              })),
            })),
            relayRecord(await readFile(`${probe}.relay`, 'utf8')),
            result.parts,
          );
          for (const page of seen) {
            const joinAck = page.origin + page.joinedAt;
            result.toJoinAck.push(joinAck - page.startedAt);
            const lastOpen = Math.max(...page.links.map((link) => epoch(page.origin, link.open) ?? 0));
            if (lastOpen > joinAck) result.busy.push(busyMs(page.wire, joinAck, lastOpen));
            result.polled += page.wire.polled;
            result.relays += page.wire.out.length + page.wire.polled;
          }
          const starts = seen.map((page) => page.startedAt);
          const acks = seen.map((page) => page.origin + page.joinedAt);
          result.joinAckSpread.push(Math.max(...acks) - Math.min(...acks));
          if (navigation === 'click') result.clickSpread.push(Math.max(...starts) - Math.min(...starts));
          const ends = seen.flatMap((page) => page.links.map((link) => epoch(page.origin, link.open) ?? 0));
          if (profile)
            console.log(`   (window for the server's profile: ${Math.min(...starts)} to ${Math.max(...ends)})`);
          result.server.push(serverLoop(await readFile(probe, 'utf8'), Math.min(...starts), Math.max(...ends)));
        } finally {
          await browser.close();
        }
      }
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
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
  const counts = (process.env.BENCH_PAGES ?? '2,8').split(',').map(Number);
  for (const peers of counts) {
    const load = loadavg()[0]!;
    const results = { click: emptyResult(), goto: emptyResult() };
    await joinToOpen(peers, results);
    const span = `load average ${load.toFixed(1)} to ${loadavg()[0]!.toFixed(1)}`;
    for (const navigation of NAVIGATIONS) {
      const {
        durations,
        stuck,
        phases,
        parts,
        toJoinAck,
        busy,
        polled,
        relays,
        clickSpread,
        joinAckSpread,
        cpu,
        server,
      } = results[navigation];
      const how =
        navigation === 'click' ? 'settled pages click the room together' : 'pages navigate to the room together';
      console.log(
        `2. join → all data channels open, ${peers} pages (${how}), ${durations.length} samples, ${stuck.length} not all open after ${JOIN_DEADLINE_MS / 1000} s: p50 ${quantile(durations, 0.5).toFixed(0)} ms, p95 ${quantile(durations, 0.95).toFixed(0)} ms (${span})`,
      );
      for (const page of stuck)
        console.log(
          `   not all open: joined ${page.joined}, peers ${page.peers.join(', ')}; links: ${page.links.join(' | ')}`,
        );
      const p = (values: number[]) => `${quantile(values, 0.5).toFixed(0)} / ${quantile(values, 0.95).toFixed(0)} ms`;
      console.log(
        `   ${navigation === 'click' ? 'click' : 'navigation'} to join ack, per page, p50 / p95: ${p(toJoinAck)}`,
      );
      if (clickSpread.length)
        console.log(`   clicks of a round spread over (max): ${Math.max(...clickSpread).toFixed(0)} ms`);
      console.log(
        `   join acks of a round spread over, p50 / max: ${quantile(joinAckSpread, 0.5).toFixed(0)} / ${Math.max(...joinAckSpread).toFixed(0)} ms`,
      );
      console.log(`   main thread in long tasks from join ack to all open, per page, p50 / p95: ${p(busy)}`);
      console.log(
        `   server's event loop from the first click to the last open, per round: ${server.map((r) => `busy ${(100 * r.utilization).toFixed(0)} %, ticks late p50 ${r.lateP50.toFixed(0)} / max ${r.lateMax.toFixed(0)} ms`).join('; ')}`,
      );
      console.log(
        `   CPU from the ${navigation === 'click' ? 'clicks' : 'navigations'} to all open, per round: ${cpu.map((r) => `${(r.wallMs / 1000).toFixed(1)} s wall, browser ${(r.browserMs / 1000).toFixed(1)} s, server ${(r.serverMs / 1000).toFixed(2)} s`).join('; ')}`,
      );
      console.log(
        `   signals relayed: ${relays}, ${(relays / (ROUNDS * ((peers * (peers - 1)) / 2))).toFixed(1)} per link`,
      );
      if (polled) console.log(`   signals sent over long polling, not the WebSocket: ${polled}`);
      if (peers < 8) continue;
      console.log(`   phases of every link (${phases['making the offer'].length} links), p50 / p95:`);
      for (const phase of PHASES)
        console.log(
          `     ${phase.padEnd(54)} ${quantile(phases[phase], 0.5).toFixed(0).padStart(5)} / ${quantile(phases[phase], 0.95).toFixed(0).padStart(5)} ms`,
        );
      printRoundTrip(parts);
    }
  }
}

// BENCH_PART=relay or join runs one half.
const part = process.env.BENCH_PART ?? 'all';
if (part !== 'join') await relayBench();
if (part !== 'relay') await joinBench();
