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

export interface StorageInfo {
  usage: number;
  quota: number;
  persisted: boolean;
}

export async function storageInfo(): Promise<StorageInfo | null> {
  if (!navigator.storage?.estimate) return null;
  const [{ usage = 0, quota = 0 }, persisted] = await Promise.all([navigator.storage.estimate(), navigator.storage.persisted?.() ?? false]);
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
export async function saveToDevice(model: DeviceModel, expectedBytes: number, onProgress: (progress: SaveProgress) => void, signal?: AbortSignal): Promise<void> {
  if (!cachesAvailable()) throw new DeviceStorageError('UNAVAILABLE', 'This browser cannot store files for offline use (no Cache API; is the page served over HTTPS?)');
  if (expectedBytes > 50 * MB) await navigator.storage?.persist?.().catch(() => false);
  const cache = await caches.open(MODEL_CACHE);
  const files: SaveProgress['files'] = Object.fromEntries(model.files.map((file) => [file, { loaded: 0, total: 0 }]));
  const started = performance.now();
  const report = (file: string) => {
    const values = Object.values(files);
    const loaded = values.reduce((n, f) => n + f.loaded, 0);
    const seconds = (performance.now() - started) / 1000;
    onProgress({ file, files: { ...files }, loaded, total: Math.max(expectedBytes, values.reduce((n, f) => n + f.total, 0)), speed: seconds > 0 ? loaded / seconds : 0 });
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
      if (!response.ok || !response.body) throw new DeviceStorageError('NETWORK', `The server answered ${response.status} for ${file}`);
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

/** Keeps ONNX Runtime's files for `backend` on the device (the service worker serves them from here offline). */
export async function keepRuntimeFiles(backend: 'wasm' | 'webgpu'): Promise<void> {
  if (!cachesAvailable()) return;
  const cache = await caches.open(RUNTIME_CACHE);
  for (const file of ORT_FILES[backend]) {
    const url = `${ORT_WASM_BASE}${file}`;
    if (!(await cache.match(url))) await cache.add(url).catch(() => undefined);
  }
}
