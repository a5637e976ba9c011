// The one Socket.IO connection to the `/mesh` namespace (same origin: the session cookie authenticates it).
import { io } from 'socket.io-client';
import type { MeshSocket } from '../../shared/rtc/mesh-room.ts';
import { MESH_NAMESPACE } from '../../shared/socket-contract.ts';
import { trpc } from './trpc.ts';

let socket: MeshSocket | null = null;

/** Connects once a session exists (a guest identity is made on first use). */
export async function meshSocket(): Promise<MeshSocket> {
  if (socket) return socket;
  if (!(await trpc.auth.me.query())) await trpc.auth.guest.mutate({});
  if (socket) return socket;
  const created: MeshSocket = io(MESH_NAMESPACE, { withCredentials: true });
  // The server ends a socket whose session was revoked (logout, or sign-up rotating a guest's session): the next
  // caller connects again with the current cookie.
  created.on('disconnect', (reason) => {
    if (reason === 'io server disconnect' && socket === created) socket = null;
  });
  socket = created;
  return socket;
}
