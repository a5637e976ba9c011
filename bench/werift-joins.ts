// Eight peers joining a room at once, as headless werift peers (no Chromium, so two cores measure the server and
// the signaling order rather than eight browsers): per peer, the time from its join ack to a data channel open with
// every other peer. The rooms and links are the app's own (src/shared/rtc/mesh-room.ts); the mesh on top is a stub
// that only counts channels.
//
// Two ways to run the peers (`processes`):
// - all in this one process (the default): one event loop and one thread for every peer's ICE, DTLS and SCTP, so a
//   slow handshake holds up every other peer's;
// - each in a child process of its own (bench/werift-peer-process.ts), as `npm run peer` runs headless peers: the
//   two cores share the peers' work, and each peer's timers fire on an event loop of its own.
import { type ChildProcess, fork } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { type WeriftConnections, readyWeriftConnections } from '../src/peer/werift-connections.ts';
import { type MeshSocket, MeshRoom, type RoomMesh } from '../src/shared/rtc/mesh-room.ts';
import type { LinkTimeline } from '../src/shared/rtc/peer-link.ts';
import { connectedGuestSockets } from './relay-load.ts';

const stubMesh = (): RoomMesh => ({
  capabilities: () => ({ backend: null, adapter: 'cpu', models: [], tokensPerSecond: null, queue: 0, sharing: false }),
  addPeer: () => ({ receive: () => {}, droppedTotal: () => 0 }),
  removePeer: () => {},
  peer: () => undefined,
  subscribe: () => () => {},
});

const GIVE_UP_MS = 30_000;

/** A link's phases, in ms, from the side that offers (the impolite one) and, for the answer, the other side. */
export const PHASES = [
  'join ack to link made',
  'making the offer',
  'offer sent to answer back',
  '  of which the other side answering',
  'answer to channel open (ICE, DTLS, SCTP)',
  '  of which answer to ICE connected',
  '  of which ICE connected to channel open (DTLS, SCTP)',
] as const;
export type Phases = Record<(typeof PHASES)[number], number[]>;
export const emptyPhases = () => Object.fromEntries(PHASES.map((phase) => [phase, [] as number[]])) as Phases;

/**
 * One peer's room after a round, as plain data (it crosses process boundaries): its peer id, when its join was
 * acknowledged, and each of its links' timelines. Times are that peer's own performance.now(), and every phase is a
 * difference of two times taken in one process.
 */
export interface PeerRecord {
  self: string;
  joinedAt: number;
  links: { peerId: string; polite: boolean; timeline: LinkTimeline; restarts: number }[];
}

export interface RoundResult {
  /** Per peer, join ack to every channel open (ms); Infinity for a peer still missing one after 30 s. */
  durations: number[];
  phases: Phases;
  /** ICE restarts and re-sent offers the links' watchdogs made (PeerLink.restarts), all links together. */
  restarts: number;
  /** CPU time (user and system) the peers' process or processes spent from the joins to the last channel open. */
  peerCpuMs: number;
  /** The same for the server (its whole process tree), when the round was given a way to read it. */
  serverCpuMs: number;
}

/** Reads a CPU time in ms (the server's: treeCpuMs(pid)); a round reads it before the joins and after. */
export type CpuClock = () => Promise<number>;
const noClock: CpuClock = async () => 0;

function phasesOf(peers: PeerRecord[]): Phases {
  const phases = emptyPhases();
  const polite = new Map<string, LinkTimeline>();
  for (const { self, links } of peers)
    for (const link of links) if (link.polite) polite.set(`${link.peerId}>${self}`, link.timeline);
  for (const { self, joinedAt, links } of peers) {
    for (const { peerId, polite: isPolite, timeline: t } of links) {
      if (isPolite || t.offerSent === undefined || t.answerReceived === undefined) continue;
      const other = polite.get(`${self}>${peerId}`);
      phases['join ack to link made'].push(t.created - joinedAt);
      phases['making the offer'].push(t.offerSent - t.created);
      phases['offer sent to answer back'].push(t.answerReceived - t.offerSent);
      if (other?.answerSent !== undefined && other.offerReceived !== undefined)
        phases['  of which the other side answering'].push(other.answerSent - other.offerReceived);
      // Not via `connected`: werift may report the connection connected after the channel opened.
      if (t.open !== undefined) phases['answer to channel open (ICE, DTLS, SCTP)'].push(t.open - t.answerReceived);
      if (t.iceConnected !== undefined) {
        phases['  of which answer to ICE connected'].push(t.iceConnected - t.answerReceived);
        if (t.open !== undefined)
          phases['  of which ICE connected to channel open (DTLS, SCTP)'].push(t.open - t.iceConnected);
      }
    }
  }
  return phases;
}

const resultOf = (durations: number[], peers: PeerRecord[], peerCpuMs: number, serverCpuMs: number): RoundResult => ({
  durations,
  peerCpuMs,
  serverCpuMs,
  phases: phasesOf(peers),
  restarts: peers.reduce((sum, peer) => sum + peer.links.reduce((n, link) => n + link.restarts, 0), 0),
});

export const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;

let processConnections: Promise<WeriftConnections> | null = null;
/**
 * werift's peer connections as a headless peer makes them (src/peer/werift-connections.ts): a certificate and a
 * loopback connection before the first join. One per process: the one-process rounds' peers share it, as they
 * shared werift's own per-process certificate before.
 */
export function weriftConnections(): Promise<WeriftConnections> {
  processConnections ??= readyWeriftConnections().then(({ connections, warm }) => {
    if (!warm) throw new Error("werift's warm-up connection did not open");
    return connections;
  });
  return processConnections;
}

/**
 * One peer joining `room` over `socket`, where `count` peers join in all. `done` resolves with its join ack to every
 * channel open (ms), or Infinity once 30 s have passed without.
 */
export function joinPeer(
  socket: MeshSocket,
  room: string,
  count: number,
  connections: WeriftConnections,
): { meshRoom: MeshRoom; record: () => PeerRecord; done: Promise<number> } {
  let joinedAt = 0;
  const meshRoom = new MeshRoom(socket, room, [], connections.create, stubMesh(), {
    joined: () => (joinedAt = performance.now()),
  });
  const done = new Promise<number>((resolve, reject) => {
    // A peer whose channels are not all open by then counts as never (Infinity): the figures say how many.
    const timer = setTimeout(() => resolve(Infinity), GIVE_UP_MS);
    const check = () => {
      const open = meshRoom.getSnapshot().peers.filter((peer) => peer.link.channel === 'open').length;
      if (joinedAt > 0 && open >= count - 1) {
        clearTimeout(timer);
        unsubscribe();
        resolve(performance.now() - joinedAt);
      }
    };
    const unsubscribe = meshRoom.subscribe(check);
    meshRoom.join().then(check, reject);
  });
  const record = (): PeerRecord => ({
    self: meshRoom.getSnapshot().self?.peerId ?? '',
    joinedAt,
    links: meshRoom.timelines().map((link) => ({ ...link, timeline: { ...link.timeline } })),
  });
  return { meshRoom, record, done };
}

/**
 * One round in this process: `count` werift peers join `room` together; resolves with each one's
 * join-ack-to-all-open time (ms), Infinity for a peer still missing a channel after 30 s, and every link's phases.
 */
export async function weriftJoinRound(
  url: string,
  count: number,
  room = 'global',
  serverCpu: CpuClock = noClock,
): Promise<RoundResult> {
  const connections = await weriftConnections();
  const sockets = (await connectedGuestSockets(url, count)) as MeshSocket[];
  const peers: ReturnType<typeof joinPeer>[] = [];
  try {
    const serverBefore = await serverCpu();
    const cpu = process.cpuUsage();
    for (const socket of sockets) peers.push(joinPeer(socket, room, count, connections));
    const durations = await Promise.all(peers.map((peer) => peer.done));
    const peerCpuMs = cpuMs(process.cpuUsage(cpu));
    return resultOf(
      durations,
      peers.map((peer) => peer.record()),
      peerCpuMs,
      (await serverCpu()) - serverBefore,
    );
  } finally {
    await Promise.all(peers.map((peer) => peer.meshRoom.leave().catch(() => undefined)));
    sockets.forEach((socket) => socket.disconnect());
  }
}

/** Messages between the bench and a peer process (bench/werift-peer-process.ts). */
export type ToPeerProcess =
  { type: 'connect'; url: string } | { type: 'join'; room: string; count: number } | { type: 'leave' };
export type FromPeerProcess =
  | { type: 'ready' }
  | { type: 'connected' }
  | { type: 'joined'; duration: number | null; record: PeerRecord; cpuMs: number }
  | { type: 'left' };

/**
 * Headless werift peers, each in a child process of its own, kept for several rounds (started once: loading werift
 * and tsx, and a first loopback connection in each to make its certificate and compile the hot paths, are not part of
 * any round, as they are not in the one-process rounds after the first).
 */
export class WeriftPeerProcesses {
  private constructor(private readonly children: ChildProcess[]) {}

  static async start(count: number): Promise<WeriftPeerProcesses> {
    const children = Array.from({ length: count }, () =>
      fork(new URL('./werift-peer-process.ts', import.meta.url).pathname, [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    const pool = new WeriftPeerProcesses(children);
    try {
      await Promise.all(children.map((child) => pool.next(child, 'ready', 120_000)));
    } catch (error) {
      await pool.stop();
      throw error;
    }
    return pool;
  }

  private next<T extends FromPeerProcess['type']>(
    child: ChildProcess,
    type: T,
    timeoutMs = GIVE_UP_MS + 30_000,
  ): Promise<Extract<FromPeerProcess, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`a peer process sent no '${type}' in ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (message: FromPeerProcess) => {
        if (message.type === type) done(null, message as Extract<FromPeerProcess, { type: T }>);
      };
      const onExit = (code: number | null) => done(new Error(`a peer process exited with ${code}`));
      const done = (error: Error | null, message?: Extract<FromPeerProcess, { type: T }>) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (error) reject(error);
        else resolve(message!);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  }

  private send(child: ChildProcess, message: ToPeerProcess): void {
    child.send(message);
  }

  /** As weriftJoinRound, with the first `count` processes as the peers. */
  async round(url: string, count: number, room = 'global', serverCpu: CpuClock = noClock): Promise<RoundResult> {
    if (count > this.children.length) throw new Error(`only ${this.children.length} peer processes`);
    const peers = this.children.slice(0, count);
    await Promise.all(
      peers.map((child) => {
        const connected = this.next(child, 'connected');
        this.send(child, { type: 'connect', url });
        return connected;
      }),
    );
    const serverBefore = await serverCpu();
    const joined = peers.map((child) => this.next(child, 'joined'));
    for (const child of peers) this.send(child, { type: 'join', room, count });
    const results = await Promise.all(joined);
    const serverCpuMs = (await serverCpu()) - serverBefore;
    await Promise.all(
      peers.map((child) => {
        const left = this.next(child, 'left');
        this.send(child, { type: 'leave' });
        return left;
      }),
    );
    return resultOf(
      results.map((result) => result.duration ?? Infinity),
      results.map((result) => result.record),
      results.reduce((sum, result) => sum + result.cpuMs, 0),
      serverCpuMs,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
  }
}

/** Where the peers of a round run: BENCH_PEER_PROCESSES=0 (default) all in this process, 1 each in its own, both. */
export type JoinMode = 'one process' | 'processes';
export function joinModes(setting = process.env.BENCH_PEER_PROCESSES ?? '0'): JoinMode[] {
  if (setting === 'both') return ['one process', 'processes'];
  if (setting === '1') return ['processes'];
  if (setting === '0') return ['one process'];
  throw new Error(`BENCH_PEER_PROCESSES is 0, 1 or both, not ${setting}`);
}
export const MODE_LABEL: Record<JoinMode, string> = {
  'one process': 'all in the bench process',
  processes: 'each in a process of its own',
};

/** CPU time (user and system) of process `root` and all its descendants so far, in ms (Linux /proc). */
export async function treeCpuMs(root: number): Promise<number> {
  const stats: { pid: number; ppid: number; ticks: number }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // After the command: state, ppid, ..., utime (14th field of the line) and stime (15th).
      stats.push({ pid: Number(entry), ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // It exited while being read.
    }
  }
  const found = stats.filter((p) => p.pid === root);
  for (let i = 0; i < found.length; i++) found.push(...stats.filter((p) => p.ppid === found[i]!.pid));
  // Linux counts in USER_HZ, 100 per second on every architecture it runs on.
  return found.reduce((sum, p) => sum + p.ticks, 0) * 10;
}

/** The figures of many rounds of one size and mode, and their printout. */
export class JoinFigures {
  readonly durations: number[] = [];
  readonly phases = emptyPhases();
  restarts = 0;
  rounds = 0;
  peerCpuMs = 0;
  serverCpuMs = 0;

  constructor(
    readonly count: number,
    readonly mode: JoinMode,
  ) {}

  add(result: RoundResult): void {
    this.rounds++;
    this.durations.push(...result.durations);
    for (const phase of PHASES) this.phases[phase].push(...result.phases[phase]);
    this.restarts += result.restarts;
    this.peerCpuMs += result.peerCpuMs;
    this.serverCpuMs += result.serverCpuMs;
  }

  summary(quantile: (values: number[], q: number) => number): string {
    const format = (ms: number) => (Number.isFinite(ms) ? `${ms.toFixed(0)} ms` : 'over 30 s');
    const missing = this.durations.filter((ms) => !Number.isFinite(ms)).length;
    return `${this.count} werift peers joining at once, ${MODE_LABEL[this.mode]}: join ack to all channels open (${this.durations.length} samples, ${missing} not all open after 30 s): p50 ${format(quantile(this.durations, 0.5))}, p95 ${format(quantile(this.durations, 0.95))}`;
  }

  lines(quantile: (values: number[], q: number) => number, withPhases: boolean): string[] {
    const per = (ms: number) => (this.rounds ? (ms / this.rounds).toFixed(0) : '0');
    const lines = [
      this.summary(quantile),
      `  per round: CPU of the peers ${per(this.peerCpuMs)} ms, of the server ${per(this.serverCpuMs)} ms; watchdog restarts (re-sent offers, ICE restarts) ${this.restarts} in ${this.rounds} rounds`,
    ];
    if (withPhases) {
      lines.push(`  phases of every link (${this.phases['making the offer'].length} links), p50 / p95:`);
      for (const phase of PHASES)
        lines.push(
          `    ${phase.padEnd(54)} ${quantile(this.phases[phase], 0.5).toFixed(0).padStart(5)} / ${quantile(this.phases[phase], 0.95).toFixed(0).padStart(5)} ms`,
        );
    }
    return lines;
  }
}

/** One round of `count` peers in `mode` (`pool` holds the peer processes, at least `count`, for mode `processes`). */
export function joinRoundIn(
  mode: JoinMode,
  pool: WeriftPeerProcesses | null,
  url: string,
  count: number,
  serverCpu?: CpuClock,
): Promise<RoundResult> {
  if (mode === 'one process') return weriftJoinRound(url, count, 'global', serverCpu);
  if (!pool) throw new Error('no peer processes started');
  return pool.round(url, count, 'global', serverCpu);
}
