// One headless werift peer in a process of its own, as `npm run peer` runs one, driven over IPC by the bench's
// WeriftPeerProcesses (bench/werift-joins.ts): `connect` makes a guest socket on the server, `join` joins the room
// and answers with the peer's join time and its links' timelines, `leave` leaves and drops the socket.
import type { MeshSocket } from '../src/shared/rtc/mesh-room.ts';
import { connectedGuestSockets } from './relay-load.ts';
import { type FromPeerProcess, type ToPeerProcess, cpuMs, joinPeer, weriftConnections } from './werift-joins.ts';

const send = (message: FromPeerProcess) => process.send?.(message);

let socket: MeshSocket | null = null;
let peer: ReturnType<typeof joinPeer> | null = null;

process.on('message', (message: ToPeerProcess) => {
  void (async () => {
    switch (message.type) {
      case 'connect':
        socket = ((await connectedGuestSockets(message.url, 1)) as MeshSocket[])[0]!;
        send({ type: 'connected' });
        break;
      case 'join': {
        if (!socket) throw new Error('join before connect');
        const connections = await weriftConnections();
        const cpu = process.cpuUsage();
        peer = joinPeer(socket, message.room, message.count, connections);
        const duration = await peer.done;
        send({
          type: 'joined',
          duration: Number.isFinite(duration) ? duration : null,
          record: peer.record(),
          cpuMs: cpuMs(process.cpuUsage(cpu)),
        });
        break;
      }
      case 'leave':
        await peer?.meshRoom.leave().catch(() => undefined);
        socket?.disconnect();
        peer = null;
        socket = null;
        send({ type: 'left' });
        break;
    }
  })();
});
// The bench went away: so does this peer.
process.on('disconnect', () => process.exit(0));

// What a headless peer does at start (src/peer/werift-connections.ts): its certificate, and one loopback connection
// through ICE, DTLS and SCTP, as earlier rounds have in the one-process bench.
await weriftConnections();
send({ type: 'ready' });
