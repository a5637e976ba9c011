// What this node's sockets did while Redis was down that the other nodes must still hear: peers that left a room,
// presence that changed, sessions that were revoked. Through the Redis adapter a broadcast waits for Redis (node-redis
// queues it, then drops it after its command timeout of 5 s), so while Redis is down this node tells its own sockets
// at once (`local`) and keeps the rest here, one entry per peer and room, sent to every node once Redis is back: rooms
// and presence are the same on every node again whatever the outage lasted.
import type { FastifyBaseLogger } from 'fastify';
import type { Dependency } from '../dependencies/dependency.ts';
import { type MeshNamespace, acrossNodes, peerInfo, peerKey, roomKey } from './mesh.handlers.ts';

const entry = (room: string, peerId: string) => `${room}\n${peerId}`;

export class OutageBacklog {
  readonly #left = new Map<string, { room: string; peerId: string }>();
  readonly #updated = new Map<string, { room: string; peerId: string; socketId: string }>();
  readonly #revoked = new Set<string>();
  readonly #stop: () => void;

  constructor(
    private readonly mesh: MeshNamespace,
    private readonly redis: Dependency,
    private readonly log: Pick<FastifyBaseLogger, 'warn'>,
  ) {
    this.#stop = redis.onChange((change) => {
      if (change.state === 'up') void this.flush();
    });
  }

  /** Whether broadcasts go to this node's sockets only, for now (Redis is down), the rest being kept here. */
  get holding(): boolean {
    return !this.redis.up;
  }

  left(room: string, peerId: string): void {
    if (!this.holding) return;
    this.#updated.delete(entry(room, peerId));
    this.#left.set(entry(room, peerId), { room, peerId });
  }

  updated(room: string, peerId: string, socketId: string): void {
    if (this.holding) this.#updated.set(entry(room, peerId), { room, peerId, socketId });
  }

  /** Socket.IO rooms of revoked sessions, whose sockets on other nodes must still be ended. */
  revoked(keys: string[]): void {
    if (this.holding) for (const key of keys) this.#revoked.add(key);
  }

  close(): void {
    this.#stop();
  }

  /** Sends what was kept; what cannot be sent now (Redis gone again) is kept for the next time it is back. */
  async flush(): Promise<void> {
    const left = [...this.#left.values()];
    const updated = [...this.#updated.values()];
    const revoked = [...this.#revoked];
    this.#left.clear();
    this.#updated.clear();
    this.#revoked.clear();
    try {
      if (revoked.length > 0) this.mesh.in(revoked).disconnectSockets(true);
      for (const { room, socketId } of updated) {
        const socket = this.mesh.sockets.get(socketId);
        if (socket?.rooms.has(roomKey(room)))
          socket.to(roomKey(room)).emit('peer:updated', { room, peer: peerInfo(socket.data, room) });
      }
      if (left.length === 0) return;
      // A peer that is in the room again by now (a connection recovered on another node) has not left it.
      const back = await acrossNodes(this.redis, () =>
        this.mesh.in(left.map(({ peerId }) => peerKey(peerId))).fetchSockets(),
      );
      for (const { room, peerId } of left) {
        if (back.some((socket) => socket.data.peerId === peerId && socket.rooms.has(roomKey(room)))) continue;
        this.mesh.to(roomKey(room)).emit('peer:left', { room, peerId });
      }
    } catch (error) {
      for (const item of left) this.#left.set(entry(item.room, item.peerId), item);
      for (const item of updated) this.#updated.set(entry(item.room, item.peerId), item);
      for (const key of revoked) this.#revoked.add(key);
      this.log.warn(
        { err: error },
        'could not tell the other nodes what changed while Redis was down; trying again when it is back',
      );
    }
  }
}
