// What the app knows about each model on this device and the one loaded in the engine, with the actions that
// move a model along: Fetching → Preparing (the server fetches it from the Hub) → Downloading (to this device)
// → Loading (into the engine) → Ready. Screens read it with useModelState / useLoadedModel.
import type { inferRouterOutputs } from '@trpc/server';
import { useSyncExternalStore } from 'react';
import type { AppRouter } from '../../../server/trpc/root.ts';
import type { EngineModel, LoadPhase, LoadedInfo } from '../../../shared/engine-protocol.ts';
import { modelFingerprint } from '../../../shared/mesh/mesh-node.ts';
import type { ModelRef } from '../../../shared/peer-protocol.ts';
import { type DeviceModel, filesOnDevice, formatBytes, keepRuntimeFiles, removeFromDevice, saveToDevice } from '../../lib/device-cache.ts';
import { trpc } from '../../lib/trpc.ts';
import { inferenceEngine } from '../../workers/inference.ts';

export type CatalogueEntry = inferRouterOutputs<AppRouter>['manifest']['list'][number];
export type Phase = LoadPhase | 'Idle' | 'Failed';

export interface ModelState {
  phase: Phase;
  /** Every phase this model went through in the current attempt, in order. */
  phases: Phase[];
  message: string;
  loaded: number;
  total: number;
  speed: number;
  files: Record<string, { loaded: number; total: number }>;
  error: string | null;
  onDevice: boolean;
  busy: boolean;
}

const IDLE: ModelState = { phase: 'Idle', phases: [], message: '', loaded: 0, total: 0, speed: 0, files: {}, error: null, onDevice: false, busy: false };

let states: Record<string, ModelState> = {};
/** The model loaded in the engine, with the fingerprint of its exact weights (what mesh peers match on). */
export type ActiveModel = LoadedInfo & { entry: CatalogueEntry; ref: ModelRef };
let active: ActiveModel | null = null;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((listener) => listener());
const subscribe = (listener: () => void) => {
  listeners.add(listener);
  return () => listeners.delete(listener);
};

function update(id: string, patch: Partial<ModelState>): void {
  const current = states[id] ?? IDLE;
  const base = patch.phases ?? current.phases;
  const phases = patch.phase && patch.phase !== base.at(-1) ? [...base, patch.phase] : base;
  states = { ...states, [id]: { ...current, ...patch, phases } };
  emit();
}

export function useModelState(id: string): ModelState {
  return useSyncExternalStore(subscribe, () => states[id] ?? IDLE);
}

export function useLoadedModel() {
  return useSyncExternalStore(subscribe, () => active);
}

/** The same, outside React (the mesh serves with it). */
export function loadedModel(): ActiveModel | null {
  return active;
}

export const onModelStoreChange = subscribe;

/** The commit the files are pinned to: the bundle's own, or the one the server pinned on download. */
function pinned(entry: CatalogueEntry): string | null {
  return entry.bundled ? entry.revision : entry.cachedRevision;
}

function deviceModel(entry: CatalogueEntry, revision: string): DeviceModel {
  return { id: entry.id, repo: entry.repo, revision, files: entry.files.map((f) => f.path) };
}

export async function refreshDeviceStatus(entries: CatalogueEntry[]): Promise<void> {
  for (const entry of entries) {
    const revision = pinned(entry);
    const onDevice = revision !== null && (await filesOnDevice(deviceModel(entry, revision))) === entry.files.length;
    if ((states[entry.id] ?? IDLE).onDevice !== onDevice) update(entry.id, { onDevice });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Makes sure the server holds the model (it downloads from the Hub once, for everyone); returns the commit. */
async function prepareOnServer(entry: CatalogueEntry): Promise<string> {
  const ready = pinned(entry);
  if (ready) return ready;
  // The server refuses guests too; asking first spares making a guest only to be told so.
  if ((await trpc.auth.me.query())?.kind !== 'ACCOUNT') {
    throw new Error('The server has not downloaded this model yet, and asking it to needs an account: sign up on the Account screen');
  }
  await trpc.models.download.mutate({ id: entry.id });
  for (;;) {
    const status = await trpc.models.status.query({ id: entry.id });
    if (!status) throw new Error('The server has no download of this model');
    if (status.phase === 'ready' && status.revision) return status.revision;
    if (status.phase === 'failed' || status.phase === 'cancelled') {
      throw new Error(status.error ? `The server could not fetch this model: ${status.error.message}` : 'The server download was cancelled');
    }
    update(entry.id, {
      phase: 'Preparing',
      message: `The server is fetching it from the Hub (${status.phase}): ${formatBytes(status.bytesDone)} of ${formatBytes(status.bytesTotal)}`,
      loaded: status.bytesDone,
      total: status.bytesTotal,
      speed: status.speed,
      files: Object.fromEntries(status.files.map((f) => [f.path, { loaded: f.bytesDone, total: f.size }])),
    });
    await sleep(400);
  }
}

/** Server, then device: afterwards the model loads with no network. */
export async function downloadModel(entry: CatalogueEntry): Promise<string> {
  update(entry.id, { phase: 'Fetching', phases: [], message: 'Checking the catalogue and the server', error: null, busy: true, loaded: 0, total: 0, files: {} });
  const revision = await prepareOnServer(entry);
  const total = entry.totalSize ?? entry.files.reduce((n, f) => n + (f.size ?? 0), 0);
  update(entry.id, { phase: 'Preparing', message: entry.bundled ? 'Bundled with the app: nothing to fetch from the Hub' : 'The server has the model', loaded: total, total });
  await saveToDevice(deviceModel(entry, revision), total, (p) =>
    update(entry.id, { phase: 'Downloading', message: `Saving ${p.file} to this device`, loaded: p.loaded, total: p.total, speed: p.speed, files: p.files }),
  );
  update(entry.id, { onDevice: true });
  return revision;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function download(entry: CatalogueEntry): Promise<void> {
  try {
    await downloadModel(entry);
    update(entry.id, { phase: 'Idle', message: 'Saved on this device', busy: false });
  } catch (error) {
    update(entry.id, { phase: 'Failed', error: describe(error), busy: false });
  }
}

export async function load(entry: CatalogueEntry): Promise<void> {
  try {
    const saved = (states[entry.id] ?? IDLE).onDevice ? pinned(entry) : null;
    if (saved) update(entry.id, { phases: [], error: null });
    const revision = saved ?? (await downloadModel(entry));
    const model: EngineModel = { id: entry.id, repo: entry.repo, revision, dtype: entry.dtype, files: entry.files.map((f) => f.path), contextLength: entry.contextLength };
    // The files are on this device now: the engine's own fetching and "downloading" read them from the device
    // cache, so to the person it is all Loading.
    update(entry.id, { phase: 'Loading', message: 'Loading the model', busy: true });
    const info = await inferenceEngine().load(model, {
      onProgress: (p) => update(entry.id, { phase: p.phase === 'Ready' ? 'Ready' : 'Loading', message: p.message, loaded: p.loaded, total: p.total, files: p.files }),
    });
    if (info.backend !== 'cpu') void keepRuntimeFiles(info.backend);
    active = { ...info, entry, ref: { id: entry.id, sha256: await modelFingerprint(entry.repo, revision, info.dtype) } };
    update(entry.id, { phase: 'Ready', message: info.reason, busy: false, error: null });
  } catch (error) {
    update(entry.id, { phase: 'Failed', error: describe(error), busy: false });
  }
}

export async function removeFromThisDevice(entry: CatalogueEntry): Promise<void> {
  const revision = pinned(entry);
  if (revision) await removeFromDevice(deviceModel(entry, revision));
  update(entry.id, { onDevice: false, phase: 'Idle', phases: [], message: 'Removed from this device' });
}

/** A model this device can run comfortably: small enough for its memory, then one at random. */
export function pickRandomModel(entries: CatalogueEntry[]): CatalogueEntry | null {
  const memoryGb = (navigator as Navigator & { deviceMemory?: number }).deviceMemory ?? 4;
  const budget = memoryGb * 1024 ** 3 * 0.25;
  const suitable = entries.filter((e) => (e.totalSize ?? 0) <= budget);
  const pool = suitable.length ? suitable : entries;
  return pool[Math.floor(Math.random() * pool.length)] ?? null;
}
