// Where a page's offer and answer spend their round trip (bench/signaling.ts, 8-page joins): what each page's
// Socket.IO connection carried, noted on the wire by an init script (the app is not changed), joined with the
// RTCPeerConnection steps that signaling.ts's RECORD_LINKS notes. Times are epoch ms (timeOrigin + now), so two
// pages of the same machine compare.
import { quantile } from './relay-load.ts';

/**
 * Runs in each page before the app: every WebSocket frame of the `/mesh` namespace that is a signal relayed
 * (`signal:relay` out, `signal` in), the join, and their acknowledgements, with when it crossed this page's wire;
 * signal packets sent over long polling are counted apart (they are not on the WebSocket). Also the page's long
 * tasks (main thread busy for 50 ms or more).
 */
export const RECORD_WIRE = `(() => {
  const now = () => performance.timeOrigin + performance.now();
  const wire = (window.__wire = { self: null, out: [], acks: {}, in: [], polled: 0, longTasks: [] });
  const kindOf = (data) => data?.description?.type ?? 'candidates';
  const ufragOf = (data) => /a=ice-ufrag:(\\S+)/.exec(data?.description?.sdp ?? '')?.[1];
  const packet = (text) => {
    const match = /^4([23])\\/mesh,(\\d*)([\\s\\S]*)$/.exec(text);
    if (!match) return null;
    try { return { type: match[1], id: match[2], args: JSON.parse(match[3]) }; } catch { return null; }
  };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (event) => {
        if (typeof event.data !== 'string') return;
        const t = now();
        const p = packet(event.data);
        if (!p) return;
        if (p.type === '3') {
          wire.acks[p.id] = t;
          const self = p.args?.[0]?.data?.self?.peerId;
          if (self) wire.self = self;
        } else if (p.args?.[0] === 'signal') {
          const { from, data } = p.args[1] ?? {};
          wire.in.push({ t, from, kind: kindOf(data), ufrag: ufragOf(data) });
        }
      });
    }
    send(data) {
      if (typeof data === 'string') {
        const p = packet(data);
        if (p?.type === '2' && p.args?.[0] === 'signal:relay') {
          const { to, data: signal } = p.args[1] ?? {};
          wire.out.push({ t: now(), id: p.id, to, kind: kindOf(signal), ufrag: ufragOf(signal) });
        } else if (p?.type === '2' && p.args?.[0] === 'room:join') wire.join = { t: now(), id: p.id };
      }
      return super.send(data);
    }
  };
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    if (typeof body === 'string' && body.includes('"signal:relay"')) wire.polled += body.split('"signal:relay"').length - 1;
    return send.call(this, body);
  };
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) wire.longTasks.push([performance.timeOrigin + entry.startTime, entry.duration]);
    }).observe({ type: 'longtask' });
  } catch {}
})()`;

export interface WireRecord {
  self: string | null;
  join?: { t: number; id: string };
  out: { t: number; id: string; to: string; kind: string; ufrag?: string }[];
  acks: Record<string, number>;
  in: { t: number; from: string; kind: string; ufrag?: string }[];
  polled: number;
  longTasks: [number, number][];
}

/** One page's RTCPeerConnection steps (signaling.ts's PageLink), in epoch ms. */
export interface EpochLink {
  ufrag?: string;
  offerSent?: number;
  offerReceived?: number;
  answerSent?: number;
  answerReceived?: number;
}

/** The parts of "offer sent to answer back", in order; they add up to it. */
export const ROUND_TRIP_PARTS = [
  'offerer: offer made to offer on its wire',
  "offer: offerer's wire to the server taking it up",
  'server: offer taken up to sent on to the answerer',
  "offer: server to the answerer's wire",
  'answerer: offer on its wire to applied',
  'answerer: answering (offer applied to answer made)',
  'answerer: answer made to answer on its wire',
  "answer: answerer's wire to the server taking it up",
  'server: answer taken up to sent on to the offerer',
  "answer: server to the offerer's wire",
  'offerer: answer on its wire to applied',
] as const;
/** Beside the parts: the relay's acknowledgement, and what the wire carried meanwhile. */
export const ROUND_TRIP_NOTES = [
  'offer relay sent to its ack back (at the offerer)',
  'answer relay sent to its ack back (at the answerer)',
  'relays the offerer sent before its offer',
  "offer arrived before the answerer's join ack",
] as const;
export type RoundTrip = Record<(typeof ROUND_TRIP_PARTS)[number] | (typeof ROUND_TRIP_NOTES)[number], number[]>;
export const emptyRoundTrip = () =>
  Object.fromEntries([...ROUND_TRIP_PARTS, ...ROUND_TRIP_NOTES].map((part) => [part, [] as number[]])) as RoundTrip;

/**
 * Splits each link's first offer/answer round trip at every point where it crossed a wire: the offerer's offer
 * out (matched to the answerer's RTCPeerConnection by the offer's ICE username fragment), the answerer's offer in
 * and answer out, the offerer's answer in.
 */
export function roundTripParts(
  pages: { wire: WireRecord; links: EpochLink[]; joinAckAt?: number }[],
  relay: RelayRecord,
  into: RoundTrip,
): void {
  // A page's own peer id comes with its join ack, which is not on the WebSocket when the socket still polled then:
  // it is also the `to` of any offer whose ICE username fragment that page's connections hold, and the `from` of one
  // another page received.
  const holders = new Map<string, (typeof pages)[number][]>();
  for (const page of pages)
    for (const link of page.links) if (link.ufrag) holders.set(link.ufrag, [...(holders.get(link.ufrag) ?? []), page]);
  for (const page of pages)
    for (const offer of page.wire.out)
      if (offer.kind === 'offer' && offer.ufrag)
        for (const holder of holders.get(offer.ufrag) ?? []) if (holder !== page) holder.wire.self ??= offer.to;
  for (const page of pages)
    for (const offer of page.wire.in)
      if (offer.kind === 'offer' && offer.ufrag)
        for (const holder of holders.get(offer.ufrag) ?? []) if (holder !== page) holder.wire.self ??= offer.from;
  const byUfrag = new Map<string, EpochLink>();
  const bySelf = new Map<string, (typeof pages)[number]>();
  for (const page of pages) {
    for (const link of page.links) if (link.ufrag) byUfrag.set(`${page.wire.self}/${link.ufrag}`, link);
    if (page.wire.self) bySelf.set(page.wire.self, page);
  }
  for (const offerer of pages) {
    const self = offerer.wire.self;
    if (!self) continue;
    for (const [index, offer] of offerer.wire.out.entries()) {
      if (offer.kind !== 'offer' || !offer.ufrag) continue;
      if (offerer.wire.out.slice(0, index).some((o) => o.to === offer.to && o.kind === 'offer')) continue;
      const answerer = bySelf.get(offer.to);
      const mine = byUfrag.get(`${self}/${offer.ufrag}`);
      const theirs = answerer && byUfrag.get(`${answerer.wire.self}/${offer.ufrag}`);
      if (!answerer || !mine || !theirs) continue;
      const offerIn = answerer.wire.in.find((s) => s.from === self && s.kind === 'offer');
      const answerOut = answerer.wire.out.find((s) => s.to === self && s.kind === 'answer');
      const answerIn = offerer.wire.in.find((s) => s.from === answerer.wire.self && s.kind === 'answer');
      const offerRelayed = relay.get(`offer/${offer.ufrag}`);
      const answerRelayed = relay.get(`answer/${answerOut?.ufrag}`);
      const steps = [
        mine.offerSent,
        offer.t,
        offerRelayed?.in,
        offerRelayed?.out,
        offerIn?.t,
        theirs.offerReceived,
        theirs.answerSent,
        answerOut?.t,
        answerRelayed?.in,
        answerRelayed?.out,
        answerIn?.t,
        mine.answerReceived,
      ];
      if (steps.some((t) => t === undefined)) continue;
      ROUND_TRIP_PARTS.forEach((part, i) => into[part].push(steps[i + 1]! - steps[i]!));
      const offerAck = offerer.wire.acks[offer.id];
      if (offerAck !== undefined) into['offer relay sent to its ack back (at the offerer)'].push(offerAck - offer.t);
      const answerAck = answerOut && answerer.wire.acks[answerOut.id];
      if (answerAck !== undefined)
        into['answer relay sent to its ack back (at the answerer)'].push(answerAck - answerOut!.t);
      into['relays the offerer sent before its offer'].push(offerer.wire.out.filter((o) => o.t <= offer.t).length - 1);
      if (answerer.joinAckAt !== undefined)
        into["offer arrived before the answerer's join ack"].push(offerIn!.t < answerer.joinAckAt ? 1 : 0);
    }
  }
}

/** When the server took each description up and sent it on, by `type/ufrag` (bench/loop-probe.mjs's `.relay` file). */
export type RelayRecord = Map<string, { in?: number; out?: number }>;

export function relayRecord(text: string): RelayRecord {
  const record: RelayRecord = new Map();
  for (const line of text.trim().split('\n')) {
    const [t, way, type, ufrag] = line.split(',');
    if (!ufrag || (way !== 'in' && way !== 'out')) continue;
    const entry = record.get(`${type}/${ufrag}`) ?? {};
    entry[way] ??= Number(t);
    record.set(`${type}/${ufrag}`, entry);
  }
  return record;
}

/** Long tasks of each page between `from` and `to` (epoch ms): how busy its main thread was, summed. */
export function busyMs(wire: WireRecord, from: number, to: number): number {
  return wire.longTasks
    .map(([start, duration]) => Math.max(0, Math.min(start + duration, to) - Math.max(start, from)))
    .reduce((a, b) => a + b, 0);
}

export function printRoundTrip(parts: RoundTrip): void {
  const n = parts[ROUND_TRIP_PARTS[0]].length;
  console.log(`   offer sent to answer back, by where it was (${n} links), p50 / p95 (mean):`);
  for (const part of [...ROUND_TRIP_PARTS, ...ROUND_TRIP_NOTES]) {
    const values = parts[part];
    if (!values.length) continue;
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    console.log(
      `     ${part.padEnd(60)} ${quantile(values, 0.5).toFixed(0).padStart(5)} / ${quantile(values, 0.95).toFixed(0).padStart(5)} (${mean.toFixed(mean < 10 ? 2 : 0)})`,
    );
  }
}

/** CPU time (ms) of each process under `root` now, by pid: utime + stime from /proc (Linux). */
export async function treeCpu(root: number): Promise<Map<number, number>> {
  const { readdir, readFile } = await import('node:fs/promises');
  const stats = new Map<number, { ppid: number; ms: number }>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const text = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // The command name (field 2) may hold spaces: the fields after it follow its closing parenthesis.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (fields.length < 13) continue;
    stats.set(Number(name), { ppid: Number(fields[1]), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 });
  }
  const inTree = (pid: number): boolean => {
    for (let at: number | undefined = pid; at; at = stats.get(at)?.ppid) if (at === root) return true;
    return false;
  };
  return new Map([...stats].filter(([pid]) => inTree(pid)).map(([pid, { ms }]) => [pid, ms]));
}

/** CPU ms spent between two treeCpu snapshots, by the processes that `pick` keeps. */
export function cpuSpent(
  before: Map<number, number>,
  after: Map<number, number>,
  pick: (pid: number) => boolean = () => true,
): number {
  let ms = 0;
  for (const [pid, now] of after) if (pick(pid)) ms += now - (before.get(pid) ?? 0);
  return ms;
}
