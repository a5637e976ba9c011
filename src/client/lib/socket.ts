// The one Socket.IO connection to the `/mesh` namespace (same origin: the session cookie authenticates it).
import { type Socket, io } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/socket-contract.ts';
import { MESH_NAMESPACE } from '../../shared/socket-contract.ts';
import { trpc } from './trpc.ts';

export type MeshSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

let socket: MeshSocket | null = null;

/** Connects once a session exists (a guest identity is made on first use). */
export async function meshSocket(): Promise<MeshSocket> {
  if (socket) return socket;
  if (!(await trpc.auth.me.query())) await trpc.auth.guest.mutate({});
  socket ??= io(MESH_NAMESPACE, { withCredentials: true });
  return socket;
}
