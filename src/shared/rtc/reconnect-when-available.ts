// A `/mesh` handshake refused with UNAVAILABLE (the server could not check the session: its database is down) is not
// retried by socket.io-client, which stops reconnecting after any refusal from the namespace: this connects again when
// the server said to. Browser and headless peer alike.
import type { MeshSocket } from './mesh-room.ts';

/** Reconnects `socket` after each UNAVAILABLE refusal; returns the function that stops doing so. */
export function reconnectWhenAvailable(socket: MeshSocket): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onError = (error: Error & { data?: { code?: string; retryInMs?: number } }) => {
    if (error.data?.code !== 'UNAVAILABLE') return;
    clearTimeout(timer);
    timer = setTimeout(() => socket.connect(), error.data.retryInMs ?? 1000);
  };
  socket.on('connect_error', onError);
  return () => {
    clearTimeout(timer);
    socket.off('connect_error', onError);
  };
}
