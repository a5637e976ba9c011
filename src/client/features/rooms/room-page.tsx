// A live room: its members with their capabilities, WebRTC connection state and round-trip time, as peers come and
// go; sharing this device's compute, spot checks, the room's job stats, the models its peers run across their
// stages (docs/pipeline.md), and a clear word when a link cannot be made.
import { useEffect, useId, useState } from 'react';
import { useLocation, useParams, useSearch } from 'wouter';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import { Badge } from '../../components/ui/badge.tsx';
import { Button } from '../../components/ui/button.tsx';
import { Field, NativeSelect } from '../../components/ui/input.tsx';
import { Switch } from '../../components/ui/switch.tsx';
import {
  type MeshRoom,
  joinMeshRoom,
  leaveMeshRoom,
  setSharing,
  setSpotCheckRate,
  useMeshRoom,
} from '../mesh/mesh-store.ts';
import { stageChain, useRoomHostsStages, useRoomPipelines } from '../mesh/room-pipelines.ts';
import { type RoomPeerView, type RoomView, useRoomView } from '../mesh/room-view.ts';
import { useCatalogue } from '../models/catalogue.ts';
import { useLoadedModel } from '../models/model-store.ts';
import { MeshGraph } from './mesh-graph.tsx';
import { RoomStats, plural } from './room-stats.tsx';

const STATE_LABEL: Record<string, string> = {
  new: 'connecting',
  connecting: 'connecting',
  connected: 'connected',
  disconnected: 'reconnecting',
  failed: 'failed',
  closed: 'closed',
};

/** Models nobody here shares whole that the room's peers run across their stages, with each stage's peer. */
function RoomPipelines() {
  // The catalogue only once a peer here hosts a stage: asked for at every join, it was work for the server and the
  // page while the room's links were being made (bench/README.md, "Eight pages joining at once").
  const catalogue = useCatalogue({ enabled: useRoomHostsStages() });
  const pipelines = useRoomPipelines(catalogue.data?.entries ?? []);
  return pipelines.map(({ entry, stages }) => (
    <p key={entry.id} className="m-0 text-sm" data-testid="room-pipeline" data-model-id={entry.id}>
      {entry.name} runs across {stages.length} peers in this room ({stageChain(stages)})
    </p>
  ));
}

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
    <section aria-labelledby="room-title" className="flex min-w-0 flex-col gap-4">
      <h1 id="room-title" className="m-0 text-2xl font-semibold [overflow-wrap:anywhere]">
        Room {slug}
      </h1>
      {invite && (
        <p className="m-0 text-sm text-muted [overflow-wrap:anywhere]">
          Invite link: <code>{window.location.href}</code>
        </p>
      )}
      {error && (
        <p className="m-0 text-destructive" role="alert">
          {error}
        </p>
      )}
      {room?.room === slug && <RoomMembers key={room.room} room={room} />}
    </section>
  );
}

const formatRate = (rate: number | null | undefined) => (rate ? `${rate.toFixed(1)} tok/s` : '—');

/** Peers this device cannot reach directly, each named: ICE failed and only a TURN relay would carry the link. */
function NoRouteNotice({ peers }: { peers: RoomPeerView[] }) {
  const stranded = peers.filter((peer) => peer.link.noRoute);
  if (stranded.length === 0) return null;
  return (
    <div role="alert" className="rounded-lg border border-warn p-3 text-sm">
      <ul className="m-0 list-none p-0">
        {stranded.map((peer) => (
          <li key={peer.peerId} data-testid="peer-no-route" data-peer-name={peer.displayName}>
            <strong>No direct route to {peer.displayName}: a TURN server is needed.</strong>
          </li>
        ))}
      </ul>
      <p className="m-0 mt-1 text-muted">
        Your networks do not let the two browsers reach each other directly (a strict NAT or firewall on one side).
        Whoever runs this server can add a TURN relay to its ICE_SERVERS; the link keeps trying meanwhile.
      </p>
    </div>
  );
}

/** The most the room's stats wait for its links after the screen opens. */
const STATS_WAIT_MAX_MS = 5000;

/**
 * True once this device is in the room and every link it has is open or has no route (and stays true), or
 * STATS_WAIT_MAX_MS after the screen opened: the room's stats are read from the server after that, not while the
 * links are being made. Eight pages joining at once asked for them together with their joins, and the server's
 * queries held up the signals it relays (bench/README.md, "Eight pages joining at once").
 */
function useLinksSettled(view: RoomView): boolean {
  const [settled, setSettled] = useState(false);
  const now =
    view.self !== null &&
    view.peers.every((peer) => peer.link.channel === 'open' || peer.link.noRoute || peer.link.connection === 'failed');
  // Latched while rendering (React's pattern for state that follows a prop): a peer joining later hides nothing.
  if (now && !settled) setSettled(true);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(true), STATS_WAIT_MAX_MS);
    return () => clearTimeout(timer);
  }, []);
  return settled || now;
}

function RoomMembers({ room }: { room: MeshRoom }) {
  const snapshot = useRoomView(room);
  const loaded = useLoadedModel();
  const [, navigate] = useLocation();
  const shareId = useId();
  const { own } = snapshot;
  const settled = useLinksSettled(snapshot);
  return (
    <>
      {snapshot.error && (
        <p className="m-0 text-destructive" role="alert">
          {snapshot.error}
        </p>
      )}
      <p className="m-0" data-testid="room-self">
        {snapshot.self ? `You are ${snapshot.self.displayName}` : 'Joining…'}
      </p>
      <div className="flex flex-wrap items-center gap-x-6 gap-y-3">
        <div className="flex min-h-11 items-center gap-2 sm:min-h-9">
          <Switch
            id={shareId}
            data-testid="share-compute"
            checked={own.sharing}
            disabled={!loaded}
            onCheckedChange={(checked) => setSharing(checked)}
          />
          <label htmlFor={shareId} className="text-sm">
            Share my compute{' '}
            {loaded ? `(${loaded.entry.name}, ${BACKEND_LABEL[loaded.backend]})` : '(load a model first)'}
          </label>
        </div>
        <Field inline>
          Check answers from peers
          <NativeSelect
            data-testid="spot-check"
            value={String(own.spotCheckRate)}
            onChange={(event) => setSpotCheckRate(Number(event.target.value))}
          >
            <option value="0">never</option>
            <option value="0.1">1 in 10</option>
            <option value="1">every answer</option>
          </NativeSelect>
        </Field>
        <Button
          onClick={() => {
            void leaveMeshRoom();
            navigate('/rooms');
          }}
        >
          Leave room
        </Button>
      </div>
      <p className="m-0 text-sm text-muted" data-testid="self-serving">
        {own.sharing
          ? `Sharing: ${plural(own.served, 'job')} served, ${own.queue} waiting`
          : 'Not sharing: peers cannot run jobs here'}
      </p>
      <RoomStats room={room.room} enabled={settled} />
      <RoomPipelines />
      <NoRouteNotice peers={snapshot.peers} />
      {snapshot.self && snapshot.peers.length === 0 && (
        <p className="m-0 text-muted" data-testid="room-empty">
          Nobody else is here yet.
        </p>
      )}
      {snapshot.peers.length > 0 && <MeshGraph self={snapshot.self?.displayName ?? 'You'} peers={snapshot.peers} />}
      {/* On a phone the table scrolls within its box; the page itself never scrolls sideways. */}
      <div
        className="max-w-full overflow-x-auto rounded-xl border border-border"
        role="region"
        tabIndex={0}
        aria-label="Peers"
      >
        <table className="w-full border-collapse text-sm">
          <thead>
            <tr className="border-b border-border text-left">
              {['Peer', 'Backend', 'Models', 'Speed', 'Queue', 'Shares', 'Answered you', 'Connection', 'RTT'].map(
                (heading) => (
                  <th key={heading} scope="col" className="px-3 py-2 font-semibold whitespace-nowrap">
                    {heading}
                  </th>
                ),
              )}
            </tr>
          </thead>
          <tbody>
            {snapshot.peers.map((peer) => {
              // What the peer says over the data channel is live; the server's copy fills in until then.
              const caps = peer.mesh ?? peer.capabilities;
              const { excluded } = peer;
              const cell = 'px-3 py-2 border-b border-border';
              return (
                <tr
                  key={peer.peerId}
                  data-testid="room-peer"
                  data-peer-name={peer.displayName}
                  data-peer-id={peer.peerId}
                  data-excluded={excluded ? 'true' : undefined}
                >
                  <td className={cell}>
                    {peer.displayName}
                    {excluded && (
                      <Badge variant="warn" className="ml-1" title={excluded}>
                        excluded
                      </Badge>
                    )}
                    {peer.dropped > 0 && (
                      <span className="text-sm text-muted" data-testid="peer-dropped">
                        {' '}
                        ({plural(peer.dropped, 'bad message')} dropped)
                      </span>
                    )}
                  </td>
                  <td className={cell} data-testid="peer-backend">
                    {caps.backend ? BACKEND_LABEL[caps.backend] : '—'}
                  </td>
                  <td className={cell}>{caps.models.map((m) => m.id).join(', ') || '—'}</td>
                  <td className={`${cell} whitespace-nowrap`}>{formatRate(caps.tokensPerSecond)}</td>
                  <td className={cell}>{caps.queue}</td>
                  <td className={cell} data-testid="peer-sharing">
                    {caps.sharing ? 'yes' : 'no'}
                  </td>
                  <td className={cell} data-testid="peer-served-me">
                    {peer.servedMe}
                  </td>
                  <td
                    className={cell}
                    data-testid="peer-state"
                    data-state={peer.link.channel === 'open' ? 'open' : peer.link.connection}
                  >
                    {peer.link.channel === 'open'
                      ? 'connected'
                      : peer.link.noRoute
                        ? 'no direct route'
                        : (STATE_LABEL[peer.link.connection] ?? peer.link.connection)}
                  </td>
                  <td className={`${cell} whitespace-nowrap`} data-testid="peer-rtt">
                    {peer.rttMs === null ? '—' : `${peer.rttMs.toFixed(1)} ms`}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
