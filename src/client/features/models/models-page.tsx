// The Models screen: the catalogue (the server's, or offline the copy this device kept, with its date) with where
// each model is (bundled, on the server, on this device, with its bytes here), the actions on each model, Get Random
// Model, Remove all from device, and what the device keeps for offline use.
import { Suspense, lazy, useEffect } from 'react';
import { Button } from '../../components/ui/button.tsx';
import { useRoomPipelines } from '../mesh/room-pipelines.ts';
import { catalogueDate, useCatalogue } from './catalogue.ts';
import { ModelCard } from './model-card.tsx';
import {
  type CatalogueEntry,
  load,
  pickRandomModel,
  refreshDeviceStatus,
  removeAllFromThisDevice,
  useLoadedModel,
} from './model-store.ts';
import { StoragePanel } from './storage-panel.tsx';
import { AddModelForm } from './add-model-form.tsx';
import { useKeptForOffline } from './use-kept.ts';

// Radix's dialog comes after the first paint (bench/pwa.ts: initial JS under 200 KB gzip).
const RemoveAllDialog = lazy(() => import('./remove-all-dialog.tsx'));
const NO_ENTRIES: CatalogueEntry[] = [];

export function ModelsPage() {
  const catalogue = useCatalogue();
  const entries = catalogue.data?.entries ?? NO_ENTRIES;
  const loaded = useLoadedModel();
  // Models nobody in the room holds whole but its peers run across their stages.
  const pipelines = useRoomPipelines(entries);
  const kept = useKeptForOffline(entries);
  const models = kept?.filter((item) => item.kind === 'model') ?? [];
  const bytesOf = (id: string) => (kept ? (models.find((item) => item.id === id)?.bytes ?? 0) : null);

  useEffect(() => {
    if (entries.length) void refreshDeviceStatus(entries);
  }, [entries, loaded]);

  return (
    <section aria-labelledby="models-title" className="flex min-w-0 flex-col gap-4">
      <header className="flex flex-wrap items-center justify-between gap-2">
        <h1 id="models-title" className="m-0 text-2xl font-semibold">
          Models
        </h1>
        <div className="flex flex-wrap gap-2">
          <Button
            data-testid="model-random"
            disabled={!entries.length}
            onClick={() => {
              const pick = pickRandomModel(entries);
              if (pick) void load(pick);
            }}
          >
            Get Random Model
          </Button>
          <Suspense fallback={<Button disabled>Remove all from device</Button>}>
            <RemoveAllDialog
              models={models.length}
              bytes={models.reduce((n, item) => n + item.bytes, 0)}
              onConfirm={() => removeAllFromThisDevice(entries)}
            />
          </Suspense>
        </div>
      </header>
      {catalogue.data?.unreachable && (
        <p
          className="m-0 text-muted"
          role="status"
          data-testid="catalogue-kept"
          data-fetched-at={catalogue.data.fetchedAt}
        >
          The server cannot be reached ({catalogue.data.unreachable}): catalogue from{' '}
          {catalogueDate(catalogue.data.fetchedAt)}, kept on this device.
        </p>
      )}
      {catalogue.error && (
        <p className="m-0 text-destructive" role="alert">
          {catalogue.error.message}
        </p>
      )}
      {!catalogue.data && !catalogue.error && <p className="m-0">Reading the catalogue…</p>}
      <div className="grid grid-cols-[repeat(auto-fill,minmax(min(20rem,100%),1fr))] gap-4">
        {entries.map((entry) => (
          <ModelCard
            key={entry.id}
            entry={entry}
            deviceBytes={bytesOf(entry.id)}
            pipeline={pipelines.find((p) => p.entry.id === entry.id)}
          />
        ))}
      </div>
      <AddModelForm />
      <StoragePanel entries={entries} kept={kept} />
    </section>
  );
}
