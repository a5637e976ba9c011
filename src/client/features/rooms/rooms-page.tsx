// The Rooms screens: the list (create, join by invite link) and a live room: its members with their
// capabilities, WebRTC connection state and round-trip time, as peers come and go.
import { useEffect, useState } from 'react';
import { Link, useLocation, useParams, useSearch } from 'wouter';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import { ROOM_LIMITS } from '../../../shared/schemas/room.ts';
import { ensureSession } from '../../lib/session.ts';
import { api } from '../../lib/trpc.ts';
import {
  type MeshRoom,
  joinMeshRoom,
  leaveMeshRoom,
  setSharing,
  setSpotCheckRate,
  useMeshRoom,
} from '../mesh/mesh-store.ts';
import { useRoomView } from '../mesh/room-view.ts';
import { MeshGraph } from './mesh-graph.tsx';
import { RoomStats, plural } from './room-stats.tsx';
import { useLoadedModel } from '../models/model-store.ts';

export function RoomsPage() {
  const me = api.auth.me.useQuery();
  const rooms = api.room.list.useInfiniteQuery(
    { limit: ROOM_LIMITS.pageSize },
    { enabled: Boolean(me.data), getNextPageParam: (page) => page.nextCursor },
  );
  const utils = api.useUtils();
  const [, navigate] = useLocation();
  const [name, setName] = useState('');
  const [visibility, setVisibility] = useState<'PUBLIC' | 'PRIVATE'>('PUBLIC');
  const create = api.room.create.useMutation({
    onSuccess: (room) => navigate(`/rooms/${room.slug}${room.inviteCode ? `?invite=${room.inviteCode}` : ''}`),
  });
  const isAccount = me.data?.kind === 'ACCOUNT';

  useEffect(() => {
    // Rooms need a session; a guest identity is made on first visit.
    if (me.data === null) void ensureSession().then(() => utils.auth.me.invalidate());
  }, [me.data, utils]);

  return (
    <section aria-labelledby="rooms-title">
      <h1 id="rooms-title">Rooms</h1>
      <p className="muted">
        Browsers in a room connect to each other directly (WebRTC) and can run models for one another.
      </p>
      <ul className="room-list">
        {rooms.data?.pages
          .flatMap((page) => page.rooms)
          .map((room) => (
            <li key={room.id}>
              <Link href={`/rooms/${room.slug}`} data-testid="room-link">
                {room.name}
              </Link>{' '}
              <span className="muted small">
                {room.visibility === 'PRIVATE' ? 'private' : 'public'} · {room.memberCount} members · up to{' '}
                {room.capacity}
              </span>
            </li>
          ))}
      </ul>
      {rooms.hasNextPage && (
        <button
          type="button"
          data-testid="rooms-more"
          disabled={rooms.isFetchingNextPage}
          onClick={() => void rooms.fetchNextPage()}
        >
          {rooms.isFetchingNextPage ? 'Loading…' : 'Show more'}
        </button>
      )}
      {isAccount ? (
        <form
          className="actions"
          onSubmit={(event) => {
            event.preventDefault();
            create.mutate({ name, visibility, capacity: 8 });
          }}
        >
          <label>
            New room{' '}
            <input
              data-testid="room-name"
              value={name}
              onChange={(event) => setName(event.target.value)}
              maxLength={64}
              required
            />
          </label>
          <label>
            <input
              type="checkbox"
              checked={visibility === 'PRIVATE'}
              onChange={(event) => setVisibility(event.target.checked ? 'PRIVATE' : 'PUBLIC')}
            />{' '}
            Private (invite link)
          </label>
          <button type="submit" className="primary" data-testid="room-create" disabled={create.isPending}>
            Create
          </button>
        </form>
      ) : (
        <p className="muted">Guests can use the global room; creating or joining other rooms needs an account.</p>
      )}
      {create.error && (
        <p className="error" role="alert">
          {create.error.message}
        </p>
      )}
    </section>
  );
}

const STATE_LABEL: Record<string, string> = {
  new: 'connecting',
  connecting: 'connecting',
  connected: 'connected',
  disconnected: 'reconnecting',
  failed: 'failed',
  closed: 'closed',
};

export function RoomPage() {
  const { slug = 'global' } = useParams<{ slug: string }>();
  const invite = new URLSearchParams(useSearch()).get('invite') ?? undefined;
  const room = useMeshRoom();
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    // The room stays joined when this screen closes (the chat can use its peers); Leave ends it.
    joinMeshRoom(slug, invite).catch((cause: unknown) =>
      setError(cause instanceof Error ? cause.message : String(cause)),
    );
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
      {room?.room === slug && <RoomMembers room={room} />}
    </section>
  );
}

const formatRate = (rate: number | null | undefined) => (rate ? `${rate.toFixed(1)} tok/s` : '—');

function RoomMembers({ room }: { room: MeshRoom }) {
  const snapshot = useRoomView(room);
  const loaded = useLoadedModel();
  const [, navigate] = useLocation();
  const { own } = snapshot;
  return (
    <>
      {snapshot.error && (
        <p className="error" role="alert">
          {snapshot.error}
        </p>
      )}
      <p data-testid="room-self">{snapshot.self ? `You are ${snapshot.self.displayName}` : 'Joining…'}</p>
      <div className="actions">
        <label>
          <input
            type="checkbox"
            data-testid="share-compute"
            checked={own.sharing}
            disabled={!loaded}
            onChange={(event) => setSharing(event.target.checked)}
          />{' '}
          Share my compute{' '}
          {loaded ? `(${loaded.entry.name}, ${BACKEND_LABEL[loaded.backend]})` : '(load a model first)'}
        </label>
        <label>
          Check answers from peers{' '}
          <select
            data-testid="spot-check"
            value={String(own.spotCheckRate)}
            onChange={(event) => setSpotCheckRate(Number(event.target.value))}
          >
            <option value="0">never</option>
            <option value="0.1">1 in 10</option>
            <option value="1">every answer</option>
          </select>
        </label>
        <button
          type="button"
          onClick={() => {
            void leaveMeshRoom();
            navigate('/rooms');
          }}
        >
          Leave room
        </button>
      </div>
      <p className="muted small" data-testid="self-serving">
        {own.sharing
          ? `Sharing: ${plural(own.served, 'job')} served, ${own.queue} waiting`
          : 'Not sharing: peers cannot run jobs here'}
      </p>
      <RoomStats room={room.room} />
      {snapshot.self && snapshot.peers.length === 0 && (
        <p className="muted" data-testid="room-empty">
          Nobody else is here yet.
        </p>
      )}
      {snapshot.peers.length > 0 && <MeshGraph self={snapshot.self?.displayName ?? 'You'} peers={snapshot.peers} />}
      <table className="peers">
        <thead>
          <tr>
            <th scope="col">Peer</th>
            <th scope="col">Backend</th>
            <th scope="col">Models</th>
            <th scope="col">Speed</th>
            <th scope="col">Queue</th>
            <th scope="col">Shares</th>
            <th scope="col">Answered you</th>
            <th scope="col">Connection</th>
            <th scope="col">RTT</th>
          </tr>
        </thead>
        <tbody>
          {snapshot.peers.map((peer) => {
            // What the peer says over the data channel is live; the server's copy fills in until then.
            const caps = peer.mesh ?? peer.capabilities;
            const { excluded } = peer;
            return (
              <tr
                key={peer.peerId}
                data-testid="room-peer"
                data-peer-name={peer.displayName}
                data-peer-id={peer.peerId}
                data-excluded={excluded ? 'true' : undefined}
              >
                <td>
                  {peer.displayName}
                  {excluded && (
                    <span className="badge badge-warn" title={excluded}>
                      {' '}
                      excluded
                    </span>
                  )}
                  {peer.dropped > 0 && (
                    <span className="muted small" data-testid="peer-dropped">
                      {' '}
                      ({plural(peer.dropped, 'bad message')} dropped)
                    </span>
                  )}
                </td>
                <td data-testid="peer-backend">{caps.backend ? BACKEND_LABEL[caps.backend] : '—'}</td>
                <td>{caps.models.map((m) => m.id).join(', ') || '—'}</td>
                <td>{formatRate(caps.tokensPerSecond)}</td>
                <td>{caps.queue}</td>
                <td data-testid="peer-sharing">{caps.sharing ? 'yes' : 'no'}</td>
                <td data-testid="peer-served-me">{peer.servedMe}</td>
                <td data-testid="peer-state" data-state={peer.link.channel === 'open' ? 'open' : peer.link.connection}>
                  {peer.link.channel === 'open'
                    ? 'connected'
                    : (STATE_LABEL[peer.link.connection] ?? peer.link.connection)}
                </td>
                <td data-testid="peer-rtt">{peer.rttMs === null ? '—' : `${peer.rttMs.toFixed(1)} ms`}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}
