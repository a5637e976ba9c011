// A peer without a browser: joins a room through the server's API and `/mesh` signaling as a guest (or with an
// account's session token), loads a model through the server's proxy into the same engine browsers run (here on
// onnxruntime-node), and serves the room's jobs over WebRTC data channels (werift, pure TypeScript) with the same
// peer protocol. A desktop or GPU box can give its compute to a room; the tests use it as a peer too.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { refusalLinks } from '../shared/trpc-links.ts';
import { io } from 'socket.io-client';
import { RTCPeerConnection } from 'werift';
import { EngineClient } from '../shared/engine-client.ts';
import type { AppRouter } from '../server/trpc/root.ts';
import type { LoadedInfo } from '../shared/engine-protocol.ts';
import { EngineGate, type MeshEngine } from '../shared/mesh/engine-gate.ts';
import { DEFAULT_JOB_SERVER_OPTIONS } from '../shared/mesh/job-server.ts';
import { MeshNode } from '../shared/mesh/mesh-node.ts';
import {
  engineModel,
  enterRoom,
  findCatalogueModel,
  prepareOnServer,
  serverApi,
  serverCopy,
  sharedModelRef,
} from '../shared/model-flow.ts';
import { MeshRoom, type MeshSocket } from '../shared/rtc/mesh-room.ts';
import type { PeerConnectionLike } from '../shared/rtc/peer-link.ts';
import { reconnectWhenAvailable } from '../shared/rtc/reconnect-when-available.ts';
import { sessionCookieHeader, sessionFromSetCookie } from '../shared/session-cookie.ts';
import { MESH_NAMESPACE } from '../shared/socket-contract.ts';
import { InferenceEngine } from '../worker/engine.ts';
import { inProcessWorker } from '../worker/in-process.ts';
import type { LayerRange } from '../shared/pipeline/pipe-protocol.ts';
import type { FileStageSource } from './stage-source.ts';
import type { JobRecorder } from '../shared/mesh/mesh-answer.ts';

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

  private api() {
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
    const api = this.api();
    if (this.options.token) this.cookie = sessionCookieHeader(this.options.token);
    else await api.auth.guest.mutate(this.options.name ? { displayName: this.options.name } : {});
    const me = await api.auth.me.query();
    if (!me) throw new Error('The server did not accept this session: check --token');
    this.displayName = me.displayName;

    const stages = this.options.stage ? await this.loadStage(api, me.kind) : null;
    const shared = this.options.model && !stages ? await this.load(api, this.options.model, me.kind) : null;
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
    // werift speaks the standard RTCPeerConnection API this project uses; with no ICE servers configured it
    // gathers host candidates only (patches/werift+0.24.4.patch: werift itself would ask Google's STUN server, see
    // README.md, "Connecting peers: STUN and TURN").
    const createPeerConnection = (config: { iceServers: { urls: string | string[] }[] }) =>
      new RTCPeerConnection({ iceServers: config.iceServers }) as unknown as PeerConnectionLike;
    this.room = new MeshRoom(socket, this.options.room, iceServers, createPeerConnection, this.node, {
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

  /** The stage source for `--stage`, with an explicit layer range loaded now. */
  private async loadStage(api: ReturnType<HeadlessPeer['api']>, kind: 'GUEST' | 'ACCOUNT'): Promise<FileStageSource> {
    const { model, stage, stageDir } = this.options;
    if (!model) throw new Error('A stage needs --model (the catalogue model whose layers it hosts)');
    // Loaded only for a stage peer: the splitter and onnx-proto are no part of a whole-model peer's start.
    const { FileStageSource } = await import('./stage-source.ts');
    const fetched = stageDir ? null : await this.fetchWholeModel(api, model, kind);
    const source = await FileStageSource.create({
      // Peers agree on a model by its catalogue id (--model may have named it by repo id or URL).
      model: fetched?.id ?? model,
      dir: stageDir ?? fetched!.dir,
      cacheDir: path.resolve(this.options.cacheDir),
      // The model version is the catalogue's fingerprint of these weights: the ModelRef a peer sharing the whole
      // model of this dtype gives, so such a peer can check this pipeline's answers (docs/pipeline.md#stage-fingerprints).
      ...(fetched ? { graph: fetched.graph, version: fetched.revision, modelVersion: fetched.sha256 } : {}),
      ...(this.options.threads ? { threads: this.options.threads } : {}),
      ...(this.options.stageMemoryMb ? { memoryMb: this.options.stageMemoryMb } : {}),
    });
    if (stage && stage !== 'auto') {
      if (stage[1] > source.layers)
        throw new Error(`${model} has ${source.layers} layers: no layers ${stage.join('-')}`);
      this.log(`loading layers ${stage.join('-')} of ${model}…`);
      await source.open(stage);
    }
    return source;
  }

  /**
   * The whole model's files for the splitter, through the server's proxy as any peer's downloads go (the server
   * fetches it from the Hub first if it must, for an account): the dtype Node runs, kept in the cache directory.
   */
  private async fetchWholeModel(api: ReturnType<HeadlessPeer['api']>, name: string, kind: 'GUEST' | 'ACCOUNT') {
    const { entry, pinned } = await this.prepare(api, name, kind);
    const graph = pinned.files.find((file) => /^onnx\/[^/]+\.onnx$/.test(file));
    if (!graph) throw new Error(`The server holds no ONNX graph of ${entry.name} to cut stages from`);
    this.log(`fetching ${entry.name} through the server for its stages…`);
    const { fetchModelFiles } = await import('./model-files.ts');
    const dir = await fetchModelFiles({
      server: this.options.server,
      repo: entry.repo,
      revision: pinned.revision,
      files: pinned.files,
      cacheDir: path.resolve(this.options.cacheDir),
      headers: this.cookie ? { cookie: this.cookie } : {},
    });
    const { sha256 } = await sharedModelRef(entry, pinned.revision, entry.dtype.wasm);
    return { id: entry.id, dir, graph, revision: pinned.revision, sha256 };
  }

  /** The catalogue's model by id, repo id or Hub URL, and its files once the server holds the dtype Node runs. */
  private async prepare(api: ReturnType<HeadlessPeer['api']>, name: string, kind: 'GUEST' | 'ACCOUNT') {
    // The catalogue as this peer's account sees it: the built-in models, the ones it added by repo id, and those an
    // operator added for everyone. A model another account added is not there, and the server lets no peer share it.
    const found = findCatalogueModel(await api.manifest.list.query(), name);
    if (!found.entry) {
      if (found.ambiguous.length > 0)
        throw new Error(
          `The server's catalogue has ${name} at several revisions (${found.ambiguous.join(', ')}): give the id of one, or a /tree/<revision> URL`,
        );
      const hint =
        kind === 'GUEST'
          ? 'a guest sees the built-in models and those an operator added for everyone; for a model an account added by repo id, pass --token=SESSION_TOKEN of that account'
          : "this account sees the built-in models, the ones it added by repo id (models.add, the Models screen's Add a model by its repo id) and those an operator added for everyone";
      throw new Error(`The server's catalogue has no model ${name} (${hint})`);
    }
    const entry = found.entry;
    // Node runs the WASM dtype (onnxruntime-node on the CPU): only that dtype's download is needed.
    const dtype = entry.dtype.wasm;
    if (!serverCopy(entry, dtype)) this.log(`asking the server to fetch ${entry.name}…`);
    const pinned = await prepareOnServer(serverApi(api), entry, {
      dtype,
      accountHint: "pass --token=SESSION_TOKEN of an account's session",
      pollMs: 500,
    });
    return { entry, pinned };
  }

  /** Makes sure the server has the model, and loads it into an engine of this process. */
  private async load(
    api: ReturnType<HeadlessPeer['api']>,
    name: string,
    kind: 'GUEST' | 'ACCOUNT',
  ): Promise<{ engine: MeshEngine; name: string; backend: string }> {
    const { entry, pinned } = await this.prepare(api, name, kind);
    await mkdir(this.options.cacheDir, { recursive: true });
    const engine = new InferenceEngine({
      modelHost: `${this.options.server}/models/`,
      // The session: a model its account added for itself is served to that account alone.
      headers: (): Record<string, string> => (this.cookie ? { cookie: this.cookie } : {}),
      cacheDir: path.resolve(this.options.cacheDir),
      ...(this.options.threads ? { threads: this.options.threads } : {}),
    });
    this.client = new EngineClient(inProcessWorker(engine));
    this.log(`loading ${entry.name}…`);
    const info: LoadedInfo = await this.client.load(engineModel(entry, pinned));
    const ref = await sharedModelRef(entry, pinned.revision, info.dtype);
    const client = this.client;
    return {
      engine: {
        loaded: () => ({ model: ref, backend: info.backend }),
        generate: (messages, sampling, prefix) => client.generate(messages, sampling, prefix),
      },
      name: entry.name,
      backend: info.backend,
    };
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
