// Signaling load for benchmarks: guest sockets in the global room relaying ICE-sized signals to random others as
// fast as acks allow (bench/signaling.ts compares it with a bare Socket.IO relay; bench/footprint.ts measures memory
// under it).
import { type Socket, io } from 'socket.io-client';
import { MESH_NAMESPACE } from '../src/shared/socket-contract.ts';
import { guestCookie } from '../tests/support/server-process.ts';

/** The server's per-address limits raised so that one machine can play the many guests and peers of a benchmark. */
export const RELAY_LOAD_LIMITS = {
  GUEST_CREATIONS_PER_IP_PER_HOUR: '100000',
  SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: '100000',
  SOCKETS_PER_IP: '1000',
  SOCKET_EVENTS_PER_SECOND: '10000',
  RATE_LIMIT_MAX: '100000',
};

export const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0;

export interface RelayResult {
  perSecond: number;
  p95: number;
  p50: number;
}

/**
 * Drives `sockets` (already connected, all able to reach each other by `address`) with relay traffic: `window`
 * signals in flight per socket for `seconds`, at most `perSocketPerSecond` a second from each socket when given (the
 * rate SOCKET_EVENTS_PER_SECOND lets a client send), else as fast as acks come; `during` runs once the traffic is
 * under way.
 */
export async function drive(options: {
  sockets: Socket[];
  addresses: string[];
  send: (socket: Socket, to: string, data: unknown) => Promise<void>;
  seconds: number;
  window: number;
  perSocketPerSecond?: number;
  during?: () => Promise<void>;
}): Promise<RelayResult> {
  const { sockets, addresses, send } = options;
  const latencies: number[] = [];
  let delivered = 0;
  const received = (event: { data: { t: number } }) => {
    delivered++;
    latencies.push(performance.now() - event.data.t);
  };
  for (const socket of sockets) socket.on('signal', received);
  const deadline = performance.now() + options.seconds * 1000;
  const started = performance.now();
  await Promise.all([
    ...sockets.flatMap((socket, i) => {
      // Each send takes the socket's next slot, `interval` ms after the one before.
      const interval = options.perSocketPerSecond ? 1000 / options.perSocketPerSecond : 0;
      let next = performance.now();
      return Array.from({ length: options.window }, async () => {
        while (performance.now() < deadline) {
          if (interval) {
            const slot = Math.max(next, performance.now());
            next = slot + interval;
            if (slot > performance.now()) await new Promise((resolve) => setTimeout(resolve, slot - performance.now()));
            if (performance.now() >= deadline) break;
          }
          const to = addresses[(i + 1 + Math.floor(Math.random() * (sockets.length - 1))) % sockets.length] ?? '';
          await send(socket, to, {
            t: performance.now(),
            candidate: 'candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host',
          });
        }
      });
    }),
    options.during?.(),
  ]);
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.off('signal', received);
  return { perSecond: delivered / seconds, p95: quantile(latencies, 0.95), p50: quantile(latencies, 0.5) };
}

/** `count` guests' sockets on the server at `url`, each joined to the global room; with their peer ids. */
/** `count` new guests, each with a socket connected to the server's /mesh namespace (not yet in a room). */
export function connectedGuestSockets(url: string, count: number): Promise<Socket[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const socket = io(`${url}${MESH_NAMESPACE}`, {
        transports: ['websocket'],
        extraHeaders: { cookie: await guestCookie(url) },
        forceNew: true,
      });
      await new Promise<void>((resolve, reject) =>
        socket.once('connect', () => resolve()).once('connect_error', reject),
      );
      return socket;
    }),
  );
}

export async function joinedGuestSockets(url: string, count: number): Promise<{ sockets: Socket[]; peers: string[] }> {
  const sockets = await connectedGuestSockets(url, count);
  const peers = await Promise.all(
    sockets.map(
      async (s) =>
        ((await s.emitWithAck('room:join', { room: 'global' })) as { data: { self: { peerId: string } } }).data.self
          .peerId,
    ),
  );
  return { sockets, peers };
}

/** Relays through the server's /mesh namespace (room:join, signal:relay), failing on any refusal. */
export async function relayThroughMesh(socket: Socket, to: string, data: unknown): Promise<void> {
  const ack = (await socket.emitWithAck('signal:relay', { room: 'global', to, data })) as {
    ok: boolean;
    error?: string;
  };
  if (!ack.ok) throw new Error(`relay refused: ${ack.error}`);
}
