// One headless werift peer in a process of its own, as `npm run peer` runs one, driven over IPC by the bench's
// WeriftPeerProcesses (bench/werift-joins.ts): `connect` makes a guest socket on the server, `join` joins the room
// and answers with the peer's join time and its links' timelines, `leave` leaves and drops the socket.
import { RTCPeerConnection } from 'werift';
import type { MeshSocket } from '../src/shared/rtc/mesh-room.ts';
import { connectedGuestSockets } from './relay-load.ts';
import { type FromPeerProcess, type ToPeerProcess, cpuMs, joinPeer } from './werift-joins.ts';

const send = (message: FromPeerProcess) => process.send?.(message);

/**
 * Two werift connections in this process joined by a data channel: makes the process's certificate (werift makes
 * one per process, on first use) and runs ICE, DTLS and SCTP once, as earlier rounds have in the one-process bench.
 */
async function warmUp(): Promise<void> {
  const a = new RTCPeerConnection({ iceServers: [] });
  const b = new RTCPeerConnection({ iceServers: [] });
  a.onicecandidate = ({ candidate }) => void (candidate && b.addIceCandidate(candidate).catch(() => undefined));
  b.onicecandidate = ({ candidate }) => void (candidate && a.addIceCandidate(candidate).catch(() => undefined));
  const channel = a.createDataChannel('warm-up', { negotiated: true, id: 0 });
  b.createDataChannel('warm-up', { negotiated: true, id: 0 });
  const open = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the warm-up connection did not open in 30 s')), 30_000);
    channel.onopen = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription!);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription!);
  try {
    await open;
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

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
        const cpu = process.cpuUsage();
        peer = joinPeer(socket, message.room, message.count);
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

await warmUp();
send({ type: 'ready' });
