// The Rooms screens: the list (create, join by invite link) and a live room: its members with their
// capabilities, WebRTC connection state and round-trip time, as peers come and go.
import { useEffect, useState, useSyncExternalStore } from 'react';
import { Link, useLocation, useParams, useSearch } from 'wouter';
import { meshSocket } from '../../lib/socket.ts';
import { api, trpc } from '../../lib/trpc.ts';
import { MeshRoom, type MeshSnapshot } from '../../rtc/mesh-room.ts';

export function RoomsPage() {
  const me = api.auth.me.useQuery();
  const rooms = api.room.list.useQuery(undefined, { enabled: Boolean(me.data) });
  const utils = api.useUtils();
  const [, navigate] = useLocation();
  const [name, setName] = useState('');
  const [visibility, setVisibility] = useState<'PUBLIC' | 'PRIVATE'>('PUBLIC');
  const [error, setError] = useState<string | null>(null);
  const isAccount = me.data?.kind === 'ACCOUNT';

  useEffect(() => {
    // Rooms need a session; a guest identity is made on first visit.
    if (me.data === null) void trpc.auth.guest.mutate({}).then(() => utils.auth.me.invalidate());
  }, [me.data, utils]);

  async function create() {
    setError(null);
    try {
      const room = await trpc.room.create.mutate({ name, visibility, capacity: 8 });
      navigate(`/rooms/${room.slug}${room.inviteCode ? `?invite=${room.inviteCode}` : ''}`);
    } catch (cause) {
      setError(cause instanceof Error ? cause.message : String(cause));
    }
  }

  return (
    <section aria-labelledby="rooms-title">
      <h1 id="rooms-title">Rooms</h1>
      <p className="muted">Browsers in a room connect to each other directly (WebRTC) and can run models for one another.</p>
      <ul className="room-list">
        {rooms.data?.map((room) => (
          <li key={room.id}>
            <Link href={`/rooms/${room.slug}`} data-testid="room-link">
              {room.name}
            </Link>{' '}
            <span className="muted small">
              {room.visibility === 'PRIVATE' ? 'private' : 'public'} · {room.memberCount} members · up to {room.capacity}
            </span>
          </li>
        ))}
      </ul>
      {isAccount ? (
        <form
          className="actions"
          onSubmit={(event) => {
            event.preventDefault();
            void create();
          }}
        >
          <label>
            New room <input data-testid="room-name" value={name} onChange={(event) => setName(event.target.value)} maxLength={64} required />
          </label>
          <label>
            <input type="checkbox" checked={visibility === 'PRIVATE'} onChange={(event) => setVisibility(event.target.checked ? 'PRIVATE' : 'PUBLIC')} /> Private (invite link)
          </label>
          <button type="submit" className="primary" data-testid="room-create">
            Create
          </button>
        </form>
      ) : (
        <p className="muted">Guests can use the global room; creating or joining other rooms needs an account.</p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

const STATE_LABEL: Record<string, string> = { new: 'connecting', connecting: 'connecting', connected: 'connected', disconnected: 'reconnecting', failed: 'failed', closed: 'closed' };

export function RoomPage() {
  const { slug = 'global' } = useParams<{ slug: string }>();
  const invite = new URLSearchParams(useSearch()).get('invite') ?? undefined;
  const [room, setRoom] = useState<MeshRoom | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let current: MeshRoom | null = null;
    let cancelled = false;
    void (async () => {
      try {
        const socket = await meshSocket();
        const me = await trpc.auth.me.query();
        // Custom rooms: become a member first (the invite code opens private ones).
        if (slug !== 'global' && me?.kind === 'ACCOUNT') await trpc.room.join.mutate({ room: slug, ...(invite ? { inviteCode: invite } : {}) });
        const iceServers = await trpc.room.iceServers.query();
        if (cancelled) return;
        current = new MeshRoom(socket, slug, iceServers);
        setRoom(current);
        await current.join();
      } catch (cause) {
        setError(cause instanceof Error ? cause.message : String(cause));
      }
    })();
    return () => {
      cancelled = true;
      void current?.leave();
    };
  }, [slug, invite]);

  return (
    <section aria-labelledby="room-title">
      <h1 id="room-title">Room {slug}</h1>
      {invite && (
        <p className="muted small">
          Invite link: <code>{window.location.href}</code>
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {room && <RoomMembers room={room} />}
    </section>
  );
}

function RoomMembers({ room }: { room: MeshRoom }) {
  const snapshot: MeshSnapshot = useSyncExternalStore(room.subscribe, room.getSnapshot);
  return (
    <>
      {snapshot.error && (
        <p className="error" role="alert">
          {snapshot.error}
        </p>
      )}
      <p data-testid="room-self">{snapshot.self ? `You are ${snapshot.self.displayName}` : 'Joining…'}</p>
      {snapshot.self && snapshot.peers.length === 0 && <p className="muted" data-testid="room-empty">Nobody else is here yet.</p>}
      <table className="peers">
        <thead>
          <tr>
            <th scope="col">Peer</th>
            <th scope="col">Backend</th>
            <th scope="col">Models</th>
            <th scope="col">Shares</th>
            <th scope="col">Connection</th>
            <th scope="col">RTT</th>
          </tr>
        </thead>
        <tbody>
          {snapshot.peers.map((peer) => (
            <tr key={peer.peerId} data-testid="room-peer" data-peer-name={peer.displayName}>
              <td>{peer.displayName}</td>
              <td>{peer.capabilities.backend ?? '—'}</td>
              <td>{peer.capabilities.models.map((m) => m.id).join(', ') || '—'}</td>
              <td>{peer.capabilities.sharing ? 'yes' : 'no'}</td>
              <td data-testid="peer-state" data-state={peer.link.channel === 'open' ? 'open' : peer.link.connection}>
                {peer.link.channel === 'open' ? 'connected' : (STATE_LABEL[peer.link.connection] ?? peer.link.connection)}
              </td>
              <td data-testid="peer-rtt">{peer.link.rttMs === null ? '—' : `${peer.link.rttMs.toFixed(1)} ms`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
