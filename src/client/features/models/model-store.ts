// What the app knows about each model on this device and the one loaded in the engine, with the actions that
// move a model along: Fetching → Preparing (the server fetches it from the Hub) → Downloading (to this device)
// → Loading (into the engine) → Ready, and back (cancel, unload, remove). Screens read it with useModelState /
// useLoadedModel. One file because every action writes the same two pieces of state (each model's, and the loaded
// one) and in the same order of loads; the server steps live in src/shared/model-flow.ts, the device's files in
// lib/device-cache.ts, the last model in last-model.ts.
import { useSyncExternalStore } from 'react';
import { BACKEND_LABEL, type LoadPhase, type LoadedInfo } from '../../../shared/engine-protocol.ts';
import { type DeviceGpu, deviceDtype } from '../../../shared/device-dtype.ts';
import {
  engineModel,
  type PinnedModel,
  prepareOnServer,
  serverApi,
  serverCopy,
  sharedModelRef,
} from '../../../shared/model-flow.ts';
import type { Dtype } from '../../../shared/schemas/models.ts';
import type { ModelRef } from '../../../shared/peer-protocol.ts';
import type { CatalogueEntry } from '../../../shared/schemas/models.ts';
import {
  type DeviceModel,
  filesOnDevice,
  formatBytes,
  keepRuntimeFiles,
  releaseRuntimeIfUnused,
  removeAllModelFiles,
  removeFromDevice,
  saveToDevice,
} from '../../lib/device-cache.ts';
import { trpc } from '../../lib/trpc.ts';
import { closeInferenceEngine, inferenceEngine } from '../../workers/inference.ts';
import { lastModelId, rememberLastModel } from './last-model.ts';

export type { CatalogueEntry };
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

const IDLE: ModelState = {
  phase: 'Idle',
  phases: [],
  message: '',
  loaded: 0,
  total: 0,
  speed: 0,
  files: {},
  error: null,
  onDevice: false,
  busy: false,
};

let states: Record<string, ModelState> = {};
/** Whether everything the loaded model needs to load again with no network is on this device. */
export type OfflineReadiness = { state: 'keeping' | 'kept' | 'failed'; message: string };
/** The model loaded in the engine, with the fingerprint of its exact weights (what mesh peers match on). */
export type ActiveModel = LoadedInfo & { entry: CatalogueEntry; ref: ModelRef; offline: OfflineReadiness };
let active: ActiveModel | null = null;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((listener) => listener());
const subscribe = (listener: () => void) => {
  listeners.add(listener);
  return () => listeners.delete(listener);
};

/** How many times each model's `onDevice` was written: a device check begun before a write leaves it alone. */
const onDeviceWrites = new Map<string, number>();

function update(id: string, patch: Partial<ModelState>): void {
  if (patch.onDevice !== undefined) onDeviceWrites.set(id, (onDeviceWrites.get(id) ?? 0) + 1);
  const current = states[id] ?? IDLE;
  const base = patch.phases ?? current.phases;
  const phases = patch.phase && patch.phase !== base.at(-1) ? [...base, patch.phase] : base;
  states = { ...states, [id]: { ...current, ...patch, phases } };
  emit();
}

/** Whether every file of the model is on this device, as last checked (refreshDeviceStatus). */
export function modelOnDevice(id: string): boolean {
  return (states[id] ?? IDLE).onDevice;
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

/** Changes when what the device keeps may have changed: a model saved or removed, the runtime kept for a load. */
export function keptSignature(): string {
  const onDevice = Object.entries(states).flatMap(([id, state]) => (state.onDevice ? [id] : []));
  return `${onDevice.sort().join(',')}|${active?.entry.id ?? ''}:${active?.backend ?? ''}:${active?.offline.state ?? ''}`;
}

/** This device's GPU as the engine will find it, probed once (the worker asks the same navigator.gpu). */
let device: DeviceGpu | null = null;
let probing: Promise<DeviceGpu> | null = null;

interface AdapterLike {
  features: { has(feature: string): boolean };
}

function probeDevice(): Promise<DeviceGpu> {
  probing ??= (async () => {
    const gpu = (navigator as Navigator & { gpu?: { requestAdapter(o?: object): Promise<AdapterLike | null> } }).gpu;
    const adapter = await gpu?.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
    device = { webgpu: !!adapter, f16: adapter?.features.has('shader-f16') ?? false };
    return device;
  })();
  return probing;
}

/** The dtype this device runs of `entry`: only its files are fetched, to the server and to the device. */
function dtypeOn(entry: CatalogueEntry, gpu: DeviceGpu): Dtype {
  const has = (dtype: Dtype) =>
    !!entry.sizes?.some((s) => s.dtype === dtype) || entry.downloads.some((d) => d.dtype === dtype);
  return deviceDtype(entry.dtype, gpu, has);
}

/** What the server holds of `entry` for this device (src/shared/model-flow.ts), before the GPU is probed: any dtype's. */
function copyFor(entry: CatalogueEntry, gpu: DeviceGpu | null): PinnedModel | null {
  return serverCopy(entry, gpu ? dtypeOn(entry, gpu) : null);
}

/** A Hub model's files are derived by the server on download; the catalogue lists them once it holds them. */
function deviceModel(entry: CatalogueEntry, copy: Pick<PinnedModel, 'revision' | 'files'>): DeviceModel {
  return { id: entry.id, repo: entry.repo, revision: copy.revision, files: copy.files };
}

export async function refreshDeviceStatus(entries: CatalogueEntry[]): Promise<void> {
  const gpu = await probeDevice();
  for (const entry of entries) {
    const copy = copyFor(entry, gpu);
    const writes = onDeviceWrites.get(entry.id) ?? 0;
    const onDevice =
      copy !== null && copy.files.length > 0 && (await filesOnDevice(deviceModel(entry, copy))) === copy.files.length;
    // Two checks can run at once (the app's restore and the Models screen), and a save or removal can finish during
    // one: whatever was written while this check read the device is newer than what it read.
    if ((onDeviceWrites.get(entry.id) ?? 0) !== writes) continue;
    if ((states[entry.id] ?? IDLE).onDevice !== onDevice) update(entry.id, { onDevice });
  }
}

const server = serverApi(trpc);

/** Each download in progress, so that Cancel can stop it wherever it is (the server's fetch, the save to this device). */
const downloads = new Map<string, AbortController>();
/**
 * Each Cancel under way: it aborts once the server has answered models.cancel, and a poll that meanwhile reads the
 * server's download as cancelled must end as that Cancel says, not as a failure.
 */
const cancelling = new Map<string, Promise<void>>();

class Cancelled extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Cancelled';
  }
}

/** Makes sure the server holds the model, showing its progress as Preparing; stops waiting when `signal` aborts. */
async function prepare(entry: CatalogueEntry, signal: AbortSignal): Promise<PinnedModel> {
  return prepareOnServer(server, entry, {
    dtype: dtypeOn(entry, await probeDevice()),
    accountHint: 'sign up on the Account screen',
    signal,
    onProgress: (status) =>
      update(entry.id, {
        phase: 'Preparing',
        message: `The server is fetching it from the Hub (${status.phase}): ${formatBytes(status.bytesDone)} of ${formatBytes(status.bytesTotal)}`,
        loaded: status.bytesDone,
        total: status.bytesTotal,
        speed: status.speed,
        files: Object.fromEntries(status.files.map((f) => [f.path, { loaded: f.bytesDone, total: f.size }])),
      }),
  });
}

/** Server, then device: afterwards the model loads with no network. */
export async function downloadModel(entry: CatalogueEntry): Promise<PinnedModel> {
  const controller = new AbortController();
  downloads.get(entry.id)?.abort(new Cancelled('Replaced by a new download'));
  downloads.set(entry.id, controller);
  const { signal } = controller;
  try {
    update(entry.id, {
      phase: 'Fetching',
      phases: [],
      message: 'Checking the catalogue and the server',
      error: null,
      busy: true,
      loaded: 0,
      total: 0,
      files: {},
    });
    const { revision, files, bytes } = await prepare(entry, signal);
    const total = bytes ?? entry.files.reduce((n, f) => n + (f.size ?? 0), 0);
    update(entry.id, {
      phase: 'Preparing',
      message: entry.bundled ? 'Bundled with the app: nothing to fetch from the Hub' : 'The server has the model',
      loaded: total,
      total,
    });
    await saveToDevice(
      deviceModel(entry, { revision, files }),
      total,
      (p) =>
        update(entry.id, {
          phase: 'Downloading',
          message: `Saving ${p.file} to this device`,
          loaded: p.loaded,
          total: p.total,
          speed: p.speed,
          files: p.files,
        }),
      signal,
    );
    update(entry.id, { onDevice: true });
    return { revision, files, bytes: total };
  } catch (error) {
    if (!signal.aborted) await cancelling.get(entry.id);
    // A save stopped part-way leaves nothing behind (saveToDevice removes what it wrote); the abort's reason says why.
    throw signal.aborted ? (signal.reason as Error) : error;
  } finally {
    if (downloads.get(entry.id) === controller) downloads.delete(entry.id);
  }
}

/** Whether a download of `id` is in progress here (the card offers Cancel while it is). */
export function downloading(id: string): boolean {
  return downloads.has(id);
}

/**
 * Cancels the download of `entry`: the server's fetch from the Hub when it is at that step (models.cancel; only the
 * person who started it, or an operator, may), and this device's save. The card says what happened.
 */
export async function cancelDownload(entry: CatalogueEntry): Promise<void> {
  const controller = downloads.get(entry.id);
  if (!controller || cancelling.has(entry.id)) return;
  const done = cancelNow(entry, controller);
  cancelling.set(entry.id, done);
  try {
    await done;
  } finally {
    cancelling.delete(entry.id);
  }
}

async function cancelNow(entry: CatalogueEntry, controller: AbortController): Promise<void> {
  const dtype = dtypeOn(entry, await probeDevice());
  const atServer = (states[entry.id] ?? IDLE).phase === 'Preparing' && !serverCopy(entry, dtype);
  let message = atServer
    ? 'Download cancelled: the server stopped fetching it'
    : 'Download cancelled: nothing was kept on this device';
  if (atServer) {
    try {
      const { cancelled } = await trpc.models.cancel.mutate({ id: entry.id, dtype });
      if (!cancelled) message = 'Stopped waiting: the server had already finished or stopped this download';
    } catch (error) {
      message = `Stopped waiting here, but the server goes on: ${describe(error)}`;
    }
  }
  controller.abort(new Cancelled(message));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A cancelled download leaves the card idle, saying what happened; anything else is a failure with its reason. */
function failed(entry: CatalogueEntry, error: unknown): void {
  if (error instanceof Cancelled)
    update(entry.id, {
      phase: 'Idle',
      phases: [],
      message: error.message,
      busy: false,
      loaded: 0,
      total: 0,
      files: {},
    });
  else update(entry.id, { phase: 'Failed', error: describe(error), busy: false });
}

export async function download(entry: CatalogueEntry): Promise<void> {
  try {
    await downloadModel(entry);
    update(entry.id, { phase: 'Idle', message: 'Saved on this device', busy: false });
  } catch (error) {
    failed(entry, error);
  }
}

/** Keeps ONNX Runtime for the backend in use (the model's files are kept already): next time, it loads offline. */
async function keepForOffline(backend: LoadedInfo['backend'], entry: CatalogueEntry): Promise<void> {
  const setOffline = (offline: OfflineReadiness) => {
    if (active?.entry.id !== entry.id) return;
    active = { ...active, offline };
    emit();
  };
  if (backend === 'cpu') return setOffline({ state: 'failed', message: 'Only browsers keep models for offline use' });
  try {
    await keepRuntimeFiles(backend);
    setOffline({
      state: 'kept',
      message: `${entry.name} and ONNX Runtime (${BACKEND_LABEL[backend]}) are kept on this device: it loads with no network`,
    });
  } catch (error) {
    setOffline({ state: 'failed', message: `${entry.name} may not load offline: ${describe(error)}` });
  }
}

/**
 * Loads run one after another: the engine holds one model, and two loads at once (the last model coming back as
 * the app opens while the person clicks another) would leave whichever finished last. In order, the last asked wins.
 */
let loads: Promise<unknown> = Promise.resolve();

/** Loads `entry` into the engine (saving it to the device first if needed); throws with the reason when it cannot. */
export function loadModel(entry: CatalogueEntry): Promise<void> {
  update(entry.id, { busy: true, error: null, message: 'Waiting for the model loading now to finish' });
  const run = loads.then(() => loadNow(entry));
  loads = run.catch(() => undefined);
  return run;
}

async function loadNow(entry: CatalogueEntry): Promise<void> {
  try {
    // Asked of the device itself, not of the card's state: when the app opens and brings the last model back, the
    // device status may not be read yet, and saving the files again would race a removal that follows.
    const copy = copyFor(entry, await probeDevice());
    const saved =
      copy && copy.files.length > 0 && (await filesOnDevice(deviceModel(entry, copy))) === copy.files.length
        ? copy
        : null;
    if (saved) update(entry.id, { phases: [], error: null, onDevice: true });
    const { revision, files } = saved ?? (await downloadModel(entry));
    const model = engineModel(entry, { revision, files });
    // The files are on this device now: the engine's own fetching and "downloading" read them from the device
    // cache, so to the person it is all Loading.
    update(entry.id, { phase: 'Loading', message: 'Loading the model', busy: true });
    const info = await inferenceEngine().load(model, {
      onProgress: (p) =>
        update(entry.id, {
          phase: p.phase === 'Ready' ? 'Ready' : 'Loading',
          message: p.message,
          loaded: p.loaded,
          total: p.total,
          files: p.files,
        }),
    });
    active = {
      ...info,
      entry,
      ref: await sharedModelRef(entry, revision, info.dtype),
      offline: {
        state: 'keeping',
        message: `Keeping ONNX Runtime (${BACKEND_LABEL[info.backend]}) on this device for offline use`,
      },
    };
    rememberLastModel(entry.id);
    update(entry.id, { phase: 'Ready', message: info.reason, busy: false, error: null });
    await keepForOffline(info.backend, entry);
  } catch (error) {
    failed(entry, error);
    throw error;
  }
}

/**
 * Unloads the model: the inference worker is ended, the only way to hand its memory back (a WebAssembly heap
 * never shrinks, and a WebGPU device's buffers go with its worker); the next load starts a fresh one. An answer
 * being generated on it ends as interrupted. Unloaded on purpose: not brought back when the app opens.
 */
export async function unload(): Promise<void> {
  const current = active;
  if (!current) return;
  // After any load under way, so that it does not land in the engine just ended.
  await loads;
  closeInferenceEngine();
  active = null;
  if (lastModelId() === current.entry.id) rememberLastModel(null);
  update(current.entry.id, { phase: 'Idle', phases: [], message: 'Unloaded: its memory is free again', busy: false });
}

export async function load(entry: CatalogueEntry): Promise<void> {
  // The card shows the failure (phase Failed, with the reason).
  await loadModel(entry).catch(() => undefined);
}

/** Removes the model's files, and ONNX Runtime's when no model is left to run with them. */
export async function removeFromThisDevice(entry: CatalogueEntry): Promise<void> {
  const copy = copyFor(entry, await probeDevice());
  if (copy) await removeFromDevice(deviceModel(entry, copy));
  const runtimeToo = await releaseRuntimeIfUnused();
  // Removed on purpose: not the model to bring back when the app opens.
  if (lastModelId() === entry.id) rememberLastModel(null);
  update(entry.id, {
    onDevice: false,
    phase: 'Idle',
    phases: [],
    message: runtimeToo
      ? 'Removed from this device, with ONNX Runtime (no model left uses it)'
      : 'Removed from this device',
  });
}

/**
 * Removes every model's files from this device (the catalogue's and any it no longer lists) and ONNX Runtime's with
 * them. A model loaded now stays loaded until it is unloaded or the app closes; it is not brought back when the app
 * opens.
 */
export async function removeAllFromThisDevice(entries: CatalogueEntry[]): Promise<void> {
  await removeAllModelFiles();
  const runtimeToo = await releaseRuntimeIfUnused();
  rememberLastModel(null);
  const message = runtimeToo ? 'Removed from this device, with ONNX Runtime' : 'Removed from this device';
  for (const entry of entries) {
    const state = states[entry.id] ?? IDLE;
    if (state.onDevice)
      update(entry.id, {
        onDevice: false,
        phase: state.busy ? state.phase : 'Idle',
        phases: state.busy ? state.phases : [],
        message,
      });
  }
}

/** The device model of each catalogue entry that has a pinned commit (what the storage panel measures). */
export function deviceModels(entries: CatalogueEntry[]): DeviceModel[] {
  return entries.flatMap((entry) => {
    const copy = copyFor(entry, device);
    return copy ? [deviceModel(entry, copy)] : [];
  });
}

/** A quarter of the device's memory (navigator.deviceMemory, 4 GB where the browser does not say). */
function memoryBudget(): number {
  const memoryGb = (navigator as Navigator & { deviceMemory?: number }).deviceMemory ?? 4;
  return memoryGb * 1024 ** 3 * 0.25;
}

/** Why this device should not run `entry`, or null when it fits. */
export function doesNotFit(entry: CatalogueEntry): string | null {
  const size = entry.totalSize ?? 0;
  const budget = memoryBudget();
  return size > budget
    ? `${entry.name} (${formatBytes(size)}) is larger than this device runs comfortably (${formatBytes(budget)}, a quarter of its memory)`
    : null;
}

/** A model this device can run comfortably: small enough for its memory, then one at random. */
export function pickRandomModel(entries: CatalogueEntry[]): CatalogueEntry | null {
  const suitable = entries.filter((e) => doesNotFit(e) === null);
  const pool = suitable.length ? suitable : entries;
  return pool[Math.floor(Math.random() * pool.length)] ?? null;
}
