// The one Socket.IO connection to the `/mesh` namespace (same origin: the session cookie authenticates it).
import type { MeshSocket } from '../../shared/rtc/mesh-room.ts';
import { reconnectWhenAvailable } from '../../shared/rtc/reconnect-when-available.ts';
import { MESH_NAMESPACE } from '../../shared/socket-contract.ts';
import { ensureSession } from './session.ts';

let connecting: Promise<MeshSocket> | null = null;

/**
 * Connects once a session exists (a guest identity is made on first use, unless `guest` is false) and resolves
 * when the server has accepted the socket; a refused handshake rejects, and the next call tries again.
 */
export function meshSocket(options: { guest?: boolean } = {}): Promise<MeshSocket> {
  connecting ??= (async () => {
    await ensureSession(options);
    // Loaded when a room is first used, not before the first paint (bench/README.md, initial JavaScript).
    const { io } = await import('socket.io-client');
    // A WebSocket first, long polling only where it cannot connect: polling first (Socket.IO's default) had a room's
    // join and first signals go out as HTTP requests, or wait for the upgrade, while eight pages joined at once
    // (bench/README.md, "Eight pages joining at once").
    const created: MeshSocket = io(MESH_NAMESPACE, {
      withCredentials: true,
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
    });
    await new Promise<void>((resolve, reject) => {
      created.once('connect', () => resolve());
      created.once('connect_error', (error) => {
        created.close();
        reject(new Error(`The signaling server refused this tab: ${error.message}`));
      });
    });
    // A reconnect refused while the server's database is down is tried again when it says (it is not a sign-out).
    reconnectWhenAvailable(created);
    // The server ends a socket whose session was revoked (logout, or sign-up rotating a guest's session): the next
    // caller connects again with the current cookie.
    created.on('disconnect', (reason) => {
      if (reason === 'io server disconnect' && connecting === made) connecting = null;
    });
    return created;
  })();
  const made = connecting;
  made.catch(() => {
    if (connecting === made) connecting = null;
  });
  return made;
}
