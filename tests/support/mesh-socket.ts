// socket.io-client connections to the `/mesh` namespace for the socket tests, and accounts to connect as.
import { type ManagerOptions, type Socket, type SocketOptions, io } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../src/shared/socket-contract.ts';

export type MeshClient = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * Connects to `${base}/mesh` over WebSocket with no reconnection, as `cookie` (and from `origin`, if given);
 * resolves once the server accepts it. The socket goes into `opened` first, so a test can close every one.
 */
export function connectMesh(
  base: string,
  opened: MeshClient[],
  {
    cookie = null,
    origin = null,
    ...options
  }: { cookie?: string | null; origin?: string | null } & Partial<ManagerOptions & SocketOptions> = {},
): Promise<MeshClient> {
  const socket: MeshClient = io(`${base}/mesh`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    extraHeaders: { ...(cookie ? { cookie } : {}), ...(origin ? { origin } : {}) },
    ...options,
  });
  opened.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

/** The next `event` on `socket` (the next one `match` accepts, when given), or an error after `timeoutMs`. */
export function nextEvent<E extends keyof ServerToClientEvents>(
  socket: MeshClient,
  event: E,
  timeoutMs: number,
  match: (payload: Parameters<ServerToClientEvents[E]>[0]) => boolean = () => true,
): Promise<Parameters<ServerToClientEvents[E]>[0]> {
  return new Promise((resolve, reject) => {
    const listener = ((payload: Parameters<ServerToClientEvents[E]>[0]) => {
      if (!match(payload)) return;
      clearTimeout(timer);
      socket.off(event as 'signal', listener as never);
      resolve(payload);
    }) as never;
    const timer = setTimeout(() => {
      socket.off(event as 'signal', listener);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on(event as 'signal', listener);
  });
}
