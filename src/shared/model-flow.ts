// The steps a browser tab and the headless peer share to bring a model to a room: make sure the server holds it
// (asking it to fetch the model from the Hub once, then following its status), describe it to the engine,
// fingerprint it for the mesh, and join a room (membership first for a custom room, then the ICE servers). Each
// side gives its own API client through `ServerApi` and does its own part: the tab saves the files to the device
// and shows progress; the peer loads them in Node.
import type { EngineModel } from './engine-protocol.ts';
import type { ModelRef } from './peer-protocol.ts';
import type { IceServer } from './rtc/peer-link.ts';
import {
  type CatalogueEntry,
  type DownloadErrorCode,
  type DownloadPhase,
  type Dtype,
  modelFingerprint,
  parseRepoInput,
} from './schemas/models.ts';

/** The server's view of its download of a model (the `models.status` procedure's answer). */
export interface ServerDownload {
  revision: string | null;
  phase: DownloadPhase;
  bytesDone: number;
  bytesTotal: number;
  speed: number;
  files: { path: string; size: number; bytesDone: number }[];
  error: { code: DownloadErrorCode; message: string } | null;
}

/** What the flow asks of the server; the app's and the peer's tRPC clients both provide it (`serverApi`). */
export interface ServerApi {
  me(): Promise<{ kind: 'GUEST' | 'ACCOUNT' } | null>;
  /** Asks the server to fetch `dtype` of the model (every dtype its entry names without one). */
  requestDownload(id: string, dtype?: Dtype): Promise<void>;
  downloadStatus(id: string, dtype?: Dtype): Promise<ServerDownload | null>;
  joinRoom(room: string, inviteCode?: string): Promise<void>;
  iceServers(): Promise<IceServer[]>;
}

/** The procedures `ServerApi` is made of, as a tRPC client of the app's router has them. */
export interface ServerProcedures {
  auth: { me: { query(): Promise<{ kind: 'GUEST' | 'ACCOUNT' } | null> } };
  models: {
    download: { mutate(input: { id: string; dtype?: Dtype }): Promise<unknown> };
    status: { query(input: { id: string; dtype?: Dtype }): Promise<ServerDownload | null> };
  };
  room: {
    join: { mutate(input: { room: string; inviteCode?: string }): Promise<unknown> };
    iceServers: { query(): Promise<IceServer[]> };
  };
}

export function serverApi(client: ServerProcedures): ServerApi {
  return {
    me: () => client.auth.me.query(),
    requestDownload: async (id, dtype) =>
      void (await client.models.download.mutate({ id, ...(dtype ? { dtype } : {}) })),
    downloadStatus: (id, dtype) => client.models.status.query({ id, ...(dtype ? { dtype } : {}) }),
    joinRoom: async (room, inviteCode) =>
      void (await client.room.join.mutate({ room, ...(inviteCode ? { inviteCode } : {}) })),
    iceServers: () => client.room.iceServers.query(),
  };
}

/**
 * The entry `name` means in a catalogue: its id (`nano-shakespeare`, `mesh--tiny-added`), else the Hub repo id or URL
 * of an entry (a model added by repo id is named by its repo as readily as by the id derived from it), at the revision
 * a URL pins or `main`. Several entries of that repo and no revision to choose: `ambiguous` lists their ids.
 */
export function findCatalogueModel<E extends Pick<CatalogueEntry, 'id' | 'repo' | 'revision'>>(
  catalogue: readonly E[],
  name: string,
): { entry: E } | { entry: null; ambiguous: string[] } {
  const byId = catalogue.find((entry) => entry.id === name);
  if (byId) return { entry: byId };
  const parsed = parseRepoInput(name);
  if (!parsed) return { entry: null, ambiguous: [] };
  const ofRepo = catalogue.filter((entry) => entry.repo.toLowerCase() === parsed.repo.toLowerCase());
  const revision = parsed.revision ?? 'main';
  const exact = ofRepo.find((entry) => entry.revision === revision);
  if (exact) return { entry: exact };
  if (!parsed.revision && ofRepo.length === 1 && ofRepo[0]) return { entry: ofRepo[0] };
  return { entry: null, ambiguous: parsed.revision ? [] : ofRepo.map((entry) => entry.id) };
}

/** A model's files at the commit the server holds them at. */
export interface PinnedModel {
  revision: string;
  files: string[];
  /** Bytes of those files, when the server said (a Hub model's files are known only once the server has them). */
  bytes: number | null;
}

/**
 * What the server holds of `entry` for a device that runs `dtype`: the bundle; its download of that dtype (or of
 * every dtype); or, from a server that lists no downloads per dtype, the one it pinned. Null when it holds none yet.
 */
export function serverCopy(entry: CatalogueEntry, dtype: Dtype | null): PinnedModel | null {
  const paths = (files: { path: string }[]) => files.map((f) => f.path);
  if (entry.bundled) return { revision: entry.revision, files: paths(entry.files), bytes: entry.totalSize };
  const download =
    (dtype && entry.downloads.find((d) => d.dtype === dtype)) ?? entry.downloads.find((d) => d.dtype === '*');
  if (download) return { revision: download.revision, files: paths(download.files), bytes: download.totalSize };
  if (entry.downloads.length === 0 && entry.cachedRevision)
    return { revision: entry.cachedRevision, files: paths(entry.files), bytes: entry.totalSize };
  return null;
}

export interface PrepareOptions {
  /** The dtype the device will run: only its files are fetched (the server fetches other dtypes when asked). */
  dtype: Dtype;
  /** What to tell a guest, who cannot ask the server to fetch a model (e.g. "sign up on the Account screen"). */
  accountHint: string;
  /** Each status while the server fetches. */
  onProgress?: (status: ServerDownload) => void;
  /** Between status polls (default 400 ms). */
  pollMs?: number;
  /** Stops waiting for the server (a person cancelled): rejects with the signal's reason at once. */
  signal?: AbortSignal;
}

/** Waits `ms`, or rejects with `signal`'s reason as soon as it aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

/** Makes sure the server holds the model (it downloads from the Hub once, for everyone); returns its files. */
export async function prepareOnServer(
  api: ServerApi,
  entry: CatalogueEntry,
  options: PrepareOptions,
): Promise<PinnedModel> {
  const ready = serverCopy(entry, options.dtype);
  if (ready) return ready;
  // The server refuses guests too; asking first spares making the request only to be told so.
  if ((await api.me())?.kind !== 'ACCOUNT') {
    throw new Error(
      `The server has not downloaded ${entry.name} yet, and asking it to needs an account: ${options.accountHint}`,
    );
  }
  await api.requestDownload(entry.id, options.dtype);
  for (;;) {
    options.signal?.throwIfAborted();
    const status = await api.downloadStatus(entry.id, options.dtype);
    options.signal?.throwIfAborted();
    if (!status) throw new Error(`The server has no download of ${entry.name} under way`);
    if (status.phase === 'ready') {
      if (!status.revision) throw new Error(`The server fetched ${entry.name} but names no revision for it`);
      return { revision: status.revision, files: status.files.map((f) => f.path), bytes: status.bytesTotal };
    }
    if (status.phase === 'failed' || status.phase === 'cancelled') {
      throw new Error(
        status.error
          ? `The server could not fetch ${entry.name}: ${status.error.message}`
          : `The server's download of ${entry.name} was cancelled`,
      );
    }
    options.onProgress?.(status);
    await pause(options.pollMs ?? 400, options.signal);
  }
}

/** What the engine loads: the catalogue entry at the pinned commit with the files the server holds. */
export function engineModel(entry: CatalogueEntry, pinned: Pick<PinnedModel, 'revision' | 'files'>): EngineModel {
  return {
    id: entry.id,
    repo: entry.repo,
    revision: pinned.revision,
    dtype: entry.dtype,
    files: pinned.files,
    contextLength: entry.contextLength,
  };
}

/** How peers name a loaded model: its id and the fingerprint of its exact weights (what the mesh matches on). */
export async function sharedModelRef(entry: CatalogueEntry, revision: string, dtype: string): Promise<ModelRef> {
  return { id: entry.id, sha256: await modelFingerprint(entry.repo, revision, dtype) };
}

/**
 * The server's side of joining a room: an account becomes a member of a custom room first (with the invite code of
 * a private one); `global` and guests need nothing. Returns the ICE servers the room's links use.
 */
export async function enterRoom(
  api: ServerApi,
  room: string,
  kind: 'GUEST' | 'ACCOUNT' | undefined,
  inviteCode?: string,
): Promise<IceServer[]> {
  if (room !== 'global' && kind === 'ACCOUNT') await api.joinRoom(room, inviteCode);
  return api.iceServers();
}
