// Reopening the app loads the model loaded last time by itself, online or offline, so a person who chatted
// yesterday gets an answer without visiting Models. The catalogue comes from this device's kept copy first (no
// network needed); a model no longer in it, too large for this device, gone from the device while offline, or
// failing to load is reported with the reason, and the Chat screen offers the picker instead.
import { useSyncExternalStore } from 'react';
import { type Catalogue, fetchCatalogue, keptCatalogue } from './catalogue.ts';
import { lastModelId, restoreOnOpen } from './last-model.ts';
import { type CatalogueEntry, doesNotFit, loadModel, refreshDeviceStatus, modelOnDevice } from './model-store.ts';

export type RestoreState =
  | { state: 'idle' }
  | { state: 'restoring'; entry: CatalogueEntry }
  | { state: 'restored'; entry: CatalogueEntry }
  | { state: 'failed'; modelId: string; name: string; reason: string };

let current: RestoreState = { state: 'idle' };
const listeners = new Set<() => void>();
function set(next: RestoreState): void {
  current = next;
  listeners.forEach((listener) => listener());
}
const subscribe = (listener: () => void) => {
  listeners.add(listener);
  return () => listeners.delete(listener);
};

export function useRestore(): RestoreState {
  return useSyncExternalStore(subscribe, () => current);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function findEntry(id: string): Promise<{ entry: CatalogueEntry | undefined; catalogue: Catalogue }> {
  const kept = await keptCatalogue().catch(() => null);
  const fromKept = kept?.entries.find((e) => e.id === id);
  if (kept && fromKept) return { entry: fromKept, catalogue: kept };
  const catalogue = await fetchCatalogue();
  return { entry: catalogue.entries.find((e) => e.id === id), catalogue };
}

/** Started once as the app opens; never throws (what went wrong is in the state the Chat screen shows). */
export async function restoreLastModel(): Promise<void> {
  const id = lastModelId();
  if (!id || !restoreOnOpen() || current.state !== 'idle') return;
  const fail = (name: string, reason: string) => set({ state: 'failed', modelId: id, name, reason });
  let entry: CatalogueEntry | undefined;
  try {
    ({ entry } = await findEntry(id));
  } catch (error) {
    return fail(id, describe(error));
  }
  if (!entry) return fail(id, `The catalogue no longer lists ${id}`);
  const tooLarge = doesNotFit(entry);
  if (tooLarge) return fail(entry.name, tooLarge);
  await refreshDeviceStatus([entry]).catch(() => undefined);
  if (!modelOnDevice(entry.id) && !navigator.onLine) {
    return fail(
      entry.name,
      `${entry.name} is no longer on this device (the browser may have cleared its storage for room), and there is no network to fetch it again`,
    );
  }
  set({ state: 'restoring', entry });
  try {
    await loadModel(entry);
    set({ state: 'restored', entry });
  } catch (error) {
    fail(entry.name, describe(error));
  }
}
