// What a headless peer serves, made ready before it joins a room: a whole model of the server's catalogue loaded
// into an engine of this process, or a pipeline stage's source (docs/pipeline.md). Apart from the peer's room and
// connections (headless-peer.ts), which change with signaling and WebRTC; this part changes with the catalogue,
// the server's model proxy and the engine.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { createTRPCClient } from '@trpc/client';
import { EngineClient } from '../shared/engine-client.ts';
import type { AppRouter } from '../server/trpc/root.ts';
import type { LoadedInfo } from '../shared/engine-protocol.ts';
import type { MeshEngine } from '../shared/mesh/engine-gate.ts';
import {
  engineModel,
  findCatalogueModel,
  prepareOnServer,
  serverApi,
  serverCopy,
  sharedModelRef,
} from '../shared/model-flow.ts';
import { InferenceEngine } from '../worker/engine.ts';
import { inProcessWorker } from '../worker/in-process.ts';
import type { HeadlessPeerOptions } from './headless-peer.ts';
import type { FileStageSource } from './stage-source.ts';

export type PeerApi = ReturnType<typeof createTRPCClient<AppRouter>>;
type Kind = 'GUEST' | 'ACCOUNT';

/** What loading needs from the peer: its server API, options, current session cookie and log. */
export interface PeerModelContext {
  api: PeerApi;
  options: HeadlessPeerOptions;
  /** The `cookie` header's value for the peer's session ('' when it has none yet). */
  cookie: () => string;
  log: (line: string) => void;
  /** The engine's client as soon as it exists, so that the peer's stop ends it even during a load. */
  onEngine: (client: EngineClient) => void;
}

const sessionHeaders = (context: PeerModelContext): Record<string, string> =>
  context.cookie() ? { cookie: context.cookie() } : {};

/** The stage source for `--stage`, with an explicit layer range loaded now. */
export async function loadStage(context: PeerModelContext, kind: Kind): Promise<FileStageSource> {
  const { model, stage, stageDir } = context.options;
  if (!model) throw new Error('A stage needs --model (the catalogue model whose layers it hosts)');
  // Loaded only for a stage peer: the splitter and onnx-proto are no part of a whole-model peer's start.
  const { FileStageSource } = await import('./stage-source.ts');
  const fetched = stageDir ? null : await fetchWholeModel(context, model, kind);
  const source = await FileStageSource.create({
    // Peers agree on a model by its catalogue id (--model may have named it by repo id or URL).
    model: fetched?.id ?? model,
    dir: stageDir ?? fetched!.dir,
    cacheDir: path.resolve(context.options.cacheDir),
    // The model version is the catalogue's fingerprint of these weights: the ModelRef a peer sharing the whole
    // model of this dtype gives, so such a peer can check this pipeline's answers (docs/pipeline.md#stage-fingerprints).
    ...(fetched ? { graph: fetched.graph, version: fetched.revision, modelVersion: fetched.sha256 } : {}),
    ...(context.options.threads ? { threads: context.options.threads } : {}),
    ...(context.options.stageMemoryMb ? { memoryMb: context.options.stageMemoryMb } : {}),
  });
  if (stage && stage !== 'auto') {
    if (stage[1] > source.layers) throw new Error(`${model} has ${source.layers} layers: no layers ${stage.join('-')}`);
    context.log(`loading layers ${stage.join('-')} of ${model}…`);
    await source.open(stage);
  }
  return source;
}

/**
 * The whole model's files for the splitter, through the server's proxy as any peer's downloads go (the server
 * fetches it from the Hub first if it must, for an account): the dtype Node runs, kept in the cache directory.
 */
async function fetchWholeModel(context: PeerModelContext, name: string, kind: Kind) {
  const { entry, pinned } = await prepare(context, name, kind);
  const graph = pinned.files.find((file) => /^onnx\/[^/]+\.onnx$/.test(file));
  if (!graph) throw new Error(`The server holds no ONNX graph of ${entry.name} to cut stages from`);
  context.log(`fetching ${entry.name} through the server for its stages…`);
  const { fetchModelFiles } = await import('./model-files.ts');
  const dir = await fetchModelFiles({
    server: context.options.server,
    repo: entry.repo,
    revision: pinned.revision,
    files: pinned.files,
    cacheDir: path.resolve(context.options.cacheDir),
    headers: sessionHeaders(context),
  });
  const { sha256 } = await sharedModelRef(entry, pinned.revision, entry.dtype.wasm);
  return { id: entry.id, dir, graph, revision: pinned.revision, sha256 };
}

/** The catalogue's model by id, repo id or Hub URL, and its files once the server holds the dtype Node runs. */
async function prepare(context: PeerModelContext, name: string, kind: Kind) {
  // The catalogue as this peer's account sees it: the built-in models, the ones it added by repo id, and those an
  // operator added for everyone. A model another account added is not there, and the server lets no peer share it.
  const found = findCatalogueModel(await context.api.manifest.list.query(), name);
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
  if (!serverCopy(entry, dtype)) context.log(`asking the server to fetch ${entry.name}…`);
  const pinned = await prepareOnServer(serverApi(context.api), entry, {
    dtype,
    accountHint: "pass --token=SESSION_TOKEN of an account's session",
    pollMs: 500,
  });
  return { entry, pinned };
}

/** Makes sure the server has the model, and loads it into an engine of this process. */
export async function loadWholeModel(
  context: PeerModelContext,
  name: string,
  kind: Kind,
): Promise<{ engine: MeshEngine; name: string; backend: string }> {
  const { entry, pinned } = await prepare(context, name, kind);
  await mkdir(context.options.cacheDir, { recursive: true });
  const engine = new InferenceEngine({
    modelHost: `${context.options.server}/models/`,
    // The session: a model its account added for itself is served to that account alone.
    headers: () => sessionHeaders(context),
    cacheDir: path.resolve(context.options.cacheDir),
    ...(context.options.threads ? { threads: context.options.threads } : {}),
  });
  const client = new EngineClient(inProcessWorker(engine));
  context.onEngine(client);
  context.log(`loading ${entry.name}…`);
  const info: LoadedInfo = await client.load(engineModel(entry, pinned));
  const ref = await sharedModelRef(entry, pinned.revision, info.dtype);
  return {
    engine: {
      loaded: () => ({ model: ref, backend: info.backend }),
      generate: (messages, sampling, prefix) => client.generate(messages, sampling, prefix),
    },
    name: entry.name,
    backend: info.backend,
  };
}
