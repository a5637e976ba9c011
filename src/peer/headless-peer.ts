// A peer without a browser: joins a room through the server's API and `/mesh` signaling as a guest (or with an
// account's session token), loads a model through the server's proxy into the same engine browsers run (here on
// onnxruntime-node), and serves the room's jobs over WebRTC data channels (werift, pure TypeScript) with the same
// peer protocol. A desktop or GPU box can give its compute to a room; the tests use it as a peer too. What it serves
// is loaded by peer-models.ts, its WebRTC connections made by werift-connections.ts; this file is the session, the
// room and the peer's lifetime.
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { refusalLinks } from '../shared/trpc-links.ts';
import { io } from 'socket.io-client';
import type { EngineClient } from '../shared/engine-client.ts';
import type { AppRouter } from '../server/trpc/root.ts';
import { EngineGate, type MeshEngine } from '../shared/mesh/engine-gate.ts';
import { DEFAULT_JOB_SERVER_OPTIONS } from '../shared/mesh/job-server.ts';
import { MeshNode } from '../shared/mesh/mesh-node.ts';
import { enterRoom, serverApi } from '../shared/model-flow.ts';
import { MeshRoom, type MeshSocket } from '../shared/rtc/mesh-room.ts';
import { reconnectWhenAvailable } from '../shared/rtc/reconnect-when-available.ts';
import { sessionCookieHeader, sessionFromSetCookie } from '../shared/session-cookie.ts';
import { MESH_NAMESPACE } from '../shared/socket-contract.ts';
import type { LayerRange } from '../shared/pipeline/pipe-protocol.ts';
import type { JobRecorder } from '../shared/mesh/mesh-answer.ts';
import { type PeerApi, type PeerModelContext, loadStage, loadWholeModel } from './peer-models.ts';
import { readyWeriftConnections } from './werift-connections.ts';

export interface HeadlessPeerOptions {
  /** The server's origin, e.g. http://127.0.0.1:8787. */
  server: string;
  room: string;
  /**
   * A model of the server's catalogue, as this peer's account sees it, to load and share: its id, or the Hub repo id
   * (or URL) of a model added by repo id. Without one the peer only asks the room (the server's /v1 API).
   */
  model?: string;
  /** Display name for a new guest (ignored with `token`). */
  name?: string;
  /** An account's session token (the `mesh_session` cookie's value), for custom rooms. */
  token?: string;
  /** Where model files are kept between runs. */
  cacheDir: string;
  /** Private rooms' invite code. */
  invite?: string;
  /** ONNX Runtime threads per operator (default: every core). */
  threads?: number;
  /**
   * Host a pipeline stage of `model` instead of the whole model (docs/pipeline.md): these layers, loaded at start,
   * or `auto`, whatever layers a requester's plan gives it (loaded when asked). Its files come from `stageDir`, or
   * without one through the server's proxy (the whole model, which the splitter cuts).
   */
  stage?: LayerRange | 'auto';
  /** A model directory the stages come from: stage manifests (stages.json) and/or the whole onnx/model.onnx. */
  stageDir?: string;
  /** At most this much memory (MiB) offered to stages (planning reads it). */
  stageMemoryMb?: number;
  /** Test only: report wrong tokens (for the spot-check tests). */
  corruptTokens?: boolean;
  log?: (line: string) => void;
  /** The server ended this peer's session (its account logged out, or the token was revoked): it cannot go on. */
  onEnded?: (reason: string) => void;
}

export interface PeerStatus {
  room: string;
  name: string;
  peers: number;
  jobsServed: number;
  running: number;
  tokensPerSecond: number | null;
}

export class HeadlessPeer {
  private cookie = '';
  private room: MeshRoom<MeshNode> | null = null;
  private socket: MeshSocket | null = null;
  private client: EngineClient | null = null;
  private displayName = '';
  node: MeshNode | null = null;

  constructor(private readonly options: HeadlessPeerOptions) {}

  private api(): PeerApi {
    return createTRPCClient<AppRouter>({
      links: [
        ...refusalLinks<AppRouter>(),
        httpBatchLink({
          url: `${this.options.server}/api/trpc`,
          // The server refuses batches past TRPC_MAX_BATCH_SIZE (default 10).
          maxItems: 10,
          headers: () => (this.cookie ? { cookie: this.cookie } : {}),
          fetch: async (input, init) => {
            const response = await fetch(input, init);
            const session = sessionFromSetCookie(response.headers.get('set-cookie'));
            if (session) this.cookie = session;
            return response;
          },
        }),
      ],
    });
  }

  /** Job records as this peer's user, through the server's jobs.* procedures (for jobs this peer asks for). */
  jobRecords(): JobRecorder {
    const api = this.api();
    return {
      start: (input) => api.jobs.start.mutate(input),
      attempt: (input) => api.jobs.attempt.mutate(input),
      finish: (input) => api.jobs.finish.mutate(input),
      check: (input) => api.jobs.check.mutate(input),
    };
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  /** Signs in, makes sure the server has the model, loads it, joins the room and starts sharing. */
  async start(): Promise<void> {
    // The DTLS certificate and a loopback connection, meanwhile: the first join's links then run warm.
    const werift = readyWeriftConnections();
    werift.catch(() => undefined);
    const api = this.api();
    if (this.options.token) this.cookie = sessionCookieHeader(this.options.token);
    else await api.auth.guest.mutate(this.options.name ? { displayName: this.options.name } : {});
    const me = await api.auth.me.query();
    if (!me) throw new Error('The server did not accept this session: check --token');
    this.displayName = me.displayName;

    const models: PeerModelContext = {
      api,
      options: this.options,
      cookie: () => this.cookie,
      log: (line) => this.log(line),
      onEngine: (client) => (this.client = client),
    };
    const stages = this.options.stage ? await loadStage(models, me.kind) : null;
    const shared = this.options.model && !stages ? await loadWholeModel(models, this.options.model, me.kind) : null;
    const engine: MeshEngine = shared?.engine ?? {
      loaded: () => null,
      generate: () => {
        throw new Error('This peer has no model loaded');
      },
    };
    this.node = new MeshNode(engine, new EngineGate(), {
      adapter: 'cpu',
      serving: { ...DEFAULT_JOB_SERVER_OPTIONS, corruptTokens: this.options.corruptTokens ?? false },
      stages,
    });
    this.logServed(this.node);

    const iceServers = await enterRoom(serverApi(api), this.options.room, me.kind, this.options.invite);
    const socket: MeshSocket = io(`${this.options.server}${MESH_NAMESPACE}`, {
      transports: ['websocket'],
      extraHeaders: { cookie: this.cookie },
    });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (error) => reject(new Error(`Signaling refused this peer: ${error.message}`)));
    });
    reconnectWhenAvailable(socket);
    socket.on('disconnect', (reason) => {
      // Lost connections come back by themselves (refused while the server's database is down: when it says); a socket the server ended means the session is gone.
      if (reason === 'io server disconnect')
        this.options.onEnded?.("The server ended this peer's session (logged out or revoked)");
    });
    // werift speaks the standard RTCPeerConnection API this project uses.
    const { connections, warm } = await werift;
    if (!warm) this.log("werift's warm-up connection did not open: this peer's first links may be slow");
    this.room = new MeshRoom(socket, this.options.room, iceServers, connections.create, this.node, {
      frameChannels: true,
    });
    await this.room.join();
    const error = this.room.getSnapshot().error;
    if (error) throw new Error(`Could not join room ${this.options.room}: ${error}`);
    if (stages) {
      this.node.setSharing(true);
      const held = stages.describe().holds.map(([from, to]) => `layers ${from}-${to}`);
      this.log(
        `${this.displayName} hosts ${held.length ? held.join(', ') : 'any layers'} of ${stages.model} (${stages.layers} layers) in room ${this.options.room}`,
      );
      return;
    }
    if (!shared) {
      this.log(`${this.displayName} asks peers in room ${this.options.room}`);
      return;
    }
    this.node.setSharing(true);
    this.log(`${this.displayName} shares ${shared.name} (${shared.backend}) in room ${this.options.room}`);
  }

  /** One log line per job this peer finishes serving: how it ended and how many tokens it made. */
  private logServed(node: MeshNode): void {
    // The served list is capped (oldest dropped): remember the last entry logged, not a count.
    let last: (typeof node.server.served)[number] | undefined;
    node.subscribe(() => {
      const served = node.server.served;
      for (const job of served.slice(last ? served.indexOf(last) + 1 : 0)) {
        this.log(`${job.purpose} job ${job.jobId}: ${job.outcome} after ${job.tokensOut} tokens`);
      }
      last = served.at(-1);
    });
  }

  /** Members of the room this peer knows of through signaling (its data channels may still be opening). */
  roomSize(): number {
    return this.room?.getSnapshot().peers.length ?? 0;
  }

  status(): PeerStatus {
    const served = this.node?.server.served ?? [];
    const last = [...served].reverse().find((job) => job.tokensPerSecond > 0);
    return {
      room: this.options.room,
      name: this.displayName,
      peers: this.node?.list().length ?? 0,
      jobsServed: served.filter((job) => job.outcome === 'done').length,
      running: (this.node?.server.outstanding() ?? 0) + (this.node?.stages.outstanding() ?? 0),
      tokensPerSecond: last?.tokensPerSecond ?? null,
    };
  }

  /** Leaves the room (jobs in progress end; their requesters continue elsewhere) and closes everything. */
  async stop(): Promise<void> {
    this.node?.setSharing(false);
    await this.room?.leave().catch(() => undefined);
    this.node?.close();
    this.socket?.disconnect();
    this.client?.terminate();
  }
}
