// Model files kept on this device, in the Cache API under their immutable `/models/.../resolve/<commit>/...`
// URLs. The service worker answers the inference worker's fetches from the same cache (cache-first), so a
// model saved here loads offline. A save that fails part-way removes what it wrote: no half-saved model.
import { ORT_FILES, ORT_WASM_BASE } from '../env.ts';

export const MODEL_CACHE = 'mesh-models';
export const RUNTIME_CACHE = 'mesh-runtime';

export interface DeviceModel {
  id: string;
  repo: string;
  /** The pinned commit. */
  revision: string;
  files: string[];
}

export interface SaveProgress {
  file: string;
  files: Record<string, { loaded: number; total: number }>;
  loaded: number;
  total: number;
  /** Bytes per second since the save started. */
  speed: number;
}

export class DeviceStorageError extends Error {
  constructor(
    readonly code: 'QUOTA' | 'NETWORK' | 'UNAVAILABLE',
    message: string,
  ) {
    super(message);
    this.name = 'DeviceStorageError';
  }
}

export function modelFileUrl(model: Pick<DeviceModel, 'repo' | 'revision'>, file: string): string {
  return `/models/${model.repo}/resolve/${model.revision}/${file}`;
}

function cachesAvailable(): boolean {
  return typeof caches !== 'undefined';
}

/** How many of the model's files this device holds. */
export async function filesOnDevice(model: DeviceModel): Promise<number> {
  if (!cachesAvailable()) return 0;
  const cache = await caches.open(MODEL_CACHE);
  const found = await Promise.all(model.files.map((file) => cache.match(modelFileUrl(model, file))));
  return found.filter(Boolean).length;
}

export async function removeFromDevice(model: DeviceModel): Promise<void> {
  if (!cachesAvailable()) return;
  const cache = await caches.open(MODEL_CACHE);
  await Promise.all(model.files.map((file) => cache.delete(modelFileUrl(model, file))));
}

/** Removes every model file this device keeps, whichever model it belongs to. */
export async function removeAllModelFiles(): Promise<void> {
  if (!cachesAvailable()) return;
  await caches.delete(MODEL_CACHE);
}

export interface StorageInfo {
  usage: number;
  quota: number;
  persisted: boolean;
}

export async function storageInfo(): Promise<StorageInfo | null> {
  if (!navigator.storage?.estimate) return null;
  const [{ usage = 0, quota = 0 }, persisted] = await Promise.all([
    navigator.storage.estimate(),
    navigator.storage.persisted?.() ?? false,
  ]);
  return { usage, quota, persisted };
}

const MB = 1024 * 1024;
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * MB) return `${(bytes / 1024 / MB).toFixed(1)} GB`;
  if (bytes >= MB) return `${(bytes / MB).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

function isQuotaError(error: unknown): boolean {
  return error instanceof DOMException && (error.name === 'QuotaExceededError' || error.code === 22);
}

/**
 * Saves every file of `model` to the device, streaming (the response body goes straight into the cache while a
 * tee counts bytes). Asks for persistent storage first when the model is large, so the browser does not evict it.
 */
export async function saveToDevice(
  model: DeviceModel,
  expectedBytes: number,
  onProgress: (progress: SaveProgress) => void,
  signal?: AbortSignal,
): Promise<void> {
  if (!cachesAvailable())
    throw new DeviceStorageError(
      'UNAVAILABLE',
      'This browser cannot store files for offline use (no Cache API; is the page served over HTTPS?)',
    );
  if (expectedBytes > 50 * MB) await navigator.storage?.persist?.().catch(() => false);
  const cache = await caches.open(MODEL_CACHE);
  const files: SaveProgress['files'] = Object.fromEntries(model.files.map((file) => [file, { loaded: 0, total: 0 }]));
  const started = performance.now();
  const report = (file: string) => {
    const values = Object.values(files);
    const loaded = values.reduce((n, f) => n + f.loaded, 0);
    const seconds = (performance.now() - started) / 1000;
    onProgress({
      file,
      files: { ...files },
      loaded,
      total: Math.max(
        expectedBytes,
        values.reduce((n, f) => n + f.total, 0),
      ),
      speed: seconds > 0 ? loaded / seconds : 0,
    });
  };
  try {
    for (const file of model.files) {
      const url = modelFileUrl(model, file);
      const entry = files[file] ?? { loaded: 0, total: 0 };
      const existing = await cache.match(url);
      if (existing) {
        const size = Number(existing.headers.get('content-length') ?? 0);
        entry.loaded = entry.total = size;
        report(file);
        continue;
      }
      let response: Response;
      try {
        response = await fetch(url, { signal, cache: 'no-store' });
      } catch (error) {
        if (signal?.aborted) throw error;
        throw new DeviceStorageError('NETWORK', `Could not fetch ${file} from the server: ${(error as Error).message}`);
      }
      if (!response.ok || !response.body)
        throw new DeviceStorageError('NETWORK', `The server answered ${response.status} for ${file}`);
      entry.total = Number(response.headers.get('content-length') ?? 0);
      const [toCache, toCount] = response.body.tee();
      const counting = (async () => {
        const reader = toCount.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          entry.loaded += value.byteLength;
          report(file);
        }
      })();
      await Promise.all([cache.put(url, new Response(toCache, { headers: response.headers })), counting]);
    }
  } catch (error) {
    // Nothing half-saved: a model is on the device whole or not at all.
    await removeFromDevice(model).catch(() => undefined);
    if (isQuotaError(error)) {
      const info = await storageInfo().catch(() => null);
      const free = info ? Math.max(0, info.quota - info.usage) : null;
      throw new DeviceStorageError(
        'QUOTA',
        `Not enough storage on this device for this model (${formatBytes(expectedBytes)} needed${free === null ? '' : `, ${formatBytes(free)} free`}). Remove a model from this device or free up space in the browser, then try again.`,
      );
    }
    throw error;
  }
}

/** Keeps ONNX Runtime's files for `backend` on the device (the service worker answers the worker from here offline). */
export async function keepRuntimeFiles(backend: RuntimeBackend): Promise<void> {
  if (!cachesAvailable())
    throw new DeviceStorageError('UNAVAILABLE', 'This browser cannot store files for offline use (no Cache API)');
  const cache = await caches.open(RUNTIME_CACHE);
  for (const file of ORT_FILES[backend]) {
    const url = `${ORT_WASM_BASE}${file}`;
    if (await cache.match(url, { ignoreVary: true })) continue;
    let response: Response;
    try {
      response = await fetch(url);
    } catch (error) {
      throw new DeviceStorageError(
        'NETWORK',
        `Could not fetch ONNX Runtime's ${file} to keep it for offline use: ${(error as Error).message}`,
      );
    }
    if (!response.ok)
      throw new DeviceStorageError('NETWORK', `The server answered ${response.status} for ONNX Runtime's ${file}`);
    try {
      await cache.put(url, response);
    } catch (error) {
      if (!isQuotaError(error)) throw error;
      await cache.delete(url).catch(() => undefined);
      throw new DeviceStorageError(
        'QUOTA',
        `Not enough storage on this device to keep ONNX Runtime (${file}) for offline use: remove a model, then load again`,
      );
    }
  }
}

/** Deletes ONNX Runtime's kept files when no model is left on the device to run with them; says whether it did. */
export async function releaseRuntimeIfUnused(): Promise<boolean> {
  if (!cachesAvailable()) return false;
  const models = await caches.open(MODEL_CACHE);
  if ((await models.keys()).length > 0) return false;
  return caches.delete(RUNTIME_CACHE);
}

export type RuntimeBackend = keyof typeof ORT_FILES;

/** One thing kept for offline use and what it costs. */
export interface KeptItem {
  kind: 'app' | 'runtime' | 'model';
  /** `app`; the backend for the runtime; the model id (or `other` for files of models the catalogue no longer lists). */
  id: string;
  bytes: number;
  files: number;
}

/** Bytes of a cached response: its Content-Length when that is the stored body's length, else the body read. */
async function storedBytes(response: Response | undefined): Promise<number> {
  if (!response) return 0;
  const length = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(length) && !response.headers.has('content-encoding')) return length;
  return (await response.blob()).size;
}

async function sumOf(cache: Cache, requests: readonly Request[]): Promise<number> {
  let total = 0;
  for (const request of requests) total += await storedBytes(await cache.match(request));
  return total;
}

/**
 * What this device keeps for offline use: the app shell (the service worker's precache), ONNX Runtime per backend,
 * and each model's files (`models`: the catalogue's, at the commit they are pinned to).
 */
export async function keptForOffline(models: DeviceModel[]): Promise<KeptItem[]> {
  if (!cachesAvailable()) return [];
  const items: KeptItem[] = [];
  const app = { kind: 'app', id: 'app', bytes: 0, files: 0 } satisfies KeptItem;
  for (const name of await caches.keys()) {
    if (!name.startsWith('workbox-precache')) continue;
    const cache = await caches.open(name);
    const requests = await cache.keys();
    app.files += requests.length;
    app.bytes += await sumOf(cache, requests);
  }
  if (app.files) items.push(app);
  // Measuring must not create the caches it measures (a removed runtime would come back as an empty cache).
  const runtime = (await caches.has(RUNTIME_CACHE)) ? await caches.open(RUNTIME_CACHE) : null;
  const runtimeRequests = runtime ? await runtime.keys() : [];
  for (const backend of Object.keys(ORT_FILES) as RuntimeBackend[]) {
    const paths: readonly string[] = ORT_FILES[backend].map((file) => `${ORT_WASM_BASE}${file}`);
    const kept = runtimeRequests.filter((r) => paths.includes(new URL(r.url).pathname));
    if (runtime && kept.length)
      items.push({ kind: 'runtime', id: backend, bytes: await sumOf(runtime, kept), files: kept.length });
  }
  if (!(await caches.has(MODEL_CACHE))) return items;
  const cache = await caches.open(MODEL_CACHE);
  const stored = await cache.keys();
  const claimed = new Set<string>();
  for (const model of models) {
    const urls = new Set(model.files.map((file) => new URL(modelFileUrl(model, file), location.origin).href));
    const mine = stored.filter((r) => urls.has(r.url));
    mine.forEach((r) => claimed.add(r.url));
    if (mine.length) items.push({ kind: 'model', id: model.id, bytes: await sumOf(cache, mine), files: mine.length });
  }
  const other = stored.filter((r) => !claimed.has(r.url));
  if (other.length) items.push({ kind: 'model', id: 'other', bytes: await sumOf(cache, other), files: other.length });
  return items;
}
