// The baseline of bench/signaling.ts, in its own process like the real server: Socket.IO relaying an event to a
// socket id, with no session, schema, room or rate checks. Prints its URL, then serves until killed.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';

const http = createServer();
const io = new Server(http);
io.on('connection', (socket) => {
  socket.on('relay', (payload: { to: string; data: unknown }, ack: (ok: boolean) => void) => {
    io.to(payload.to).emit('signal', { from: socket.id, data: payload.data });
    ack(true);
  });
});
http.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${(http.address() as AddressInfo).port}`));
