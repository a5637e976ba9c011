// Connection-state recovery on one node (no REDIS_URL), with the events kept for it bounded in memory.
// Socket.IO's own in-memory SessionAwareAdapter keeps every event emitted in the last `maxDisconnectionDuration`
// (2 min here, pruned once a minute) as live objects, about 900 bytes per signal, so its memory grows with the
// signaling rate: 50 sockets relaying held 50 to 90 MiB more after 10 s (bench/README.md, issue 16), and at
// SOCKET_EVENTS_PER_SECOND one pair of sockets sending 64 KB signals could pin over 500 MiB. This adapter keeps the
// same events (every event packet without an ack and not volatile, in order), each as its JSON text, and drops the
// oldest once they pass SOCKET_RECOVERY_BUFFER_MB, as the Redis streams adapter trims its stream (MAXLEN). A
// connection whose offset was dropped is not recovered: it connects as a new socket and joins its rooms afresh
// (src/shared/rtc/mesh-room.ts), as after a restart. Replayed events are parsed back from JSON: the server emits no
// binary (a signal's data is checked by its receiver as JSON, src/shared/socket-contract.ts), so nothing is lost.
import { Adapter, type BroadcastOptions, type PrivateSessionId, type Session } from 'socket.io-adapter';

type PersistedSession = Parameters<Adapter['persistSession']>[0];

/**
 * What one kept event costs on V8's heap besides its JSON text: the entry, its rooms, the slot (measured with a
 * relayed ICE candidate: 175 bytes of JSON, 345 on the heap; bench/README.md).
 */
export const ENTRY_OVERHEAD_BYTES = 176;

interface Entry {
  json: string;
  /** One room (an emit to a socket, or to a room) or several. */
  rooms: string | string[];
  except: string[] | null;
  /** Seconds since the adapter was made (a small integer, not a boxed number). */
  at: number;
}

export interface RecoveryLimits {
  /** Kept events' JSON text plus ENTRY_OVERHEAD_BYTES each; the oldest go first past this. */
  maxBytes: number;
  /** The Server's `connectionStateRecovery.maxDisconnectionDuration`: sessions and events older are dropped. */
  maxDisconnectionMs: number;
}

const inRooms = (rooms: string | string[], room: string) =>
  typeof rooms === 'string' ? rooms === room : rooms.includes(room);

/** The adapter class for `new Server({ adapter })`, with `limits` for every namespace. */
export function boundedRecoveryAdapter(limits: RecoveryLimits): typeof Adapter {
  return class BoundedRecoveryAdapter extends Adapter {
    private readonly sessions = new Map<PrivateSessionId, PersistedSession & { disconnectedAt: number }>();
    /**
     * Kept events, oldest first, from `head` on (dropping from the front moves an index rather than copying). Their
     * offsets are consecutive numbers in base 36: the one at `head` is `headId`, so an offset finds its entry at once.
     */
    private entries: Entry[] = [];
    private head = 0;
    private headId = 0;
    private held = 0;
    private readonly epoch = Date.now();
    private readonly timer: NodeJS.Timeout;

    constructor(nsp: unknown) {
      super(nsp);
      // Sessions, and events when nothing is emitted, expire on a timer as in Socket.IO's adapter.
      this.timer = setInterval(() => {
        const now = Date.now();
        this.dropEvents(now);
        for (const [pid, session] of this.sessions)
          if (session.disconnectedAt + limits.maxDisconnectionMs < now) this.sessions.delete(pid);
      }, 60_000);
      this.timer.unref();
    }

    /** Bytes the kept events count for now (at most `maxBytes`). */
    get heldBytes(): number {
      return this.held;
    }

    override close(): void {
      clearInterval(this.timer);
    }

    override persistSession(session: PersistedSession): void {
      this.sessions.set(session.pid, { ...session, disconnectedAt: Date.now() });
    }

    override restoreSession(pid: PrivateSessionId, offset: string): Promise<Session> {
      const session = this.sessions.get(pid);
      // Socket.IO's contract: null when there is nothing to restore (typed as always a session).
      const none = Promise.resolve(null as unknown as Session);
      if (!session) return none;
      if (session.disconnectedAt + limits.maxDisconnectionMs < Date.now()) {
        this.sessions.delete(pid);
        return none;
      }
      const id = parseInt(offset, 36);
      const index = this.head + (id - this.headId);
      // Dropped, not yet given, or not an offset of this adapter's.
      if (!(index >= this.head && index < this.entries.length) || id.toString(36) !== offset) return none;
      const missedPackets: unknown[][] = [];
      for (let i = index + 1; i < this.entries.length; i++) {
        const { json, rooms, except } = this.entries[i]!;
        const toEveryone = Array.isArray(rooms) && rooms.length === 0;
        const included = toEveryone || session.rooms.some((room) => inRooms(rooms, room));
        if (included && !(except && session.rooms.some((room) => except.includes(room))))
          missedPackets.push(JSON.parse(json) as unknown[]);
      }
      const { disconnectedAt: _at, ...restored } = session;
      return Promise.resolve({ ...restored, missedPackets });
    }

    override broadcast(packet: { type: number; id?: number; data: unknown[] }, opts: BroadcastOptions): void {
      // As Socket.IO's adapter: acks cannot be replayed on another connection, volatile events may be lost anyway.
      if (packet.type === 2 && packet.id === undefined && opts.flags?.volatile === undefined) {
        // The offset rides at the end of the event's data, where the client reads it (as Socket.IO's adapter does).
        packet.data.push((this.headId + this.entries.length - this.head).toString(36));
        const json = JSON.stringify(packet.data);
        const now = Date.now();
        this.entries.push({
          json,
          rooms: opts.rooms.size === 1 ? (opts.rooms.values().next().value as string) : [...opts.rooms],
          except: opts.except?.size ? [...opts.except] : null,
          at: Math.floor((now - this.epoch) / 1000),
        });
        this.held += json.length + ENTRY_OVERHEAD_BYTES;
        this.dropEvents(now);
      }
      super.broadcast(packet, opts);
    }

    /** Drops the oldest events while past the byte budget, and those past the recovery window. */
    private dropEvents(now: number): void {
      const oldest = (now - limits.maxDisconnectionMs - this.epoch) / 1000;
      while (this.head < this.entries.length) {
        const entry = this.entries[this.head]!;
        if (this.held <= limits.maxBytes && entry.at >= oldest) break;
        this.held -= entry.json.length + ENTRY_OVERHEAD_BYTES;
        this.head++;
        this.headId++;
      }
      if (this.head === this.entries.length) {
        this.entries = [];
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
        this.entries = this.entries.slice(this.head);
        this.head = 0;
      }
    }
  };
}
