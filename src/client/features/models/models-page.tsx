// The Models screen: the catalogue (the server's, or offline the copy this device kept, with its date) with where
// each model is (bundled, on the server, on this device), Download, Load, Remove from device and Get Random Model,
// the load phases in words and bars, and what the device keeps for offline use.
import { useEffect } from 'react';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import { ProgressBar } from '../../components/progress-bar.tsx';
import { formatBytes } from '../../lib/device-cache.ts';
import { catalogueDate, useCatalogue, useRefreshCatalogue } from './catalogue.ts';
import { type CatalogueEntry, download, load, pickRandomModel, refreshDeviceStatus, removeFromThisDevice, useLoadedModel, useModelState } from './model-store.ts';
import { StoragePanel } from './storage-panel.tsx';
import { AddModelForm } from './add-model-form.tsx';

const NO_ENTRIES: CatalogueEntry[] = [];
const PHASES = ['Fetching', 'Preparing', 'Downloading', 'Loading', 'Ready'] as const;

function where(entry: CatalogueEntry, onDevice: boolean): string {
  const parts = [entry.bundled ? 'bundled with the app' : entry.serverStatus === 'cached' ? 'cached on the server' : 'on the Hub'];
  if (onDevice) parts.push('on this device');
  return parts.join(' · ');
}

function ModelCard({ entry }: { entry: CatalogueEntry }) {
  const state = useModelState(entry.id);
  // After a download the server holds the model pinned to a commit: read the catalogue again.
  const refresh = useRefreshCatalogue();
  const loaded = useLoadedModel();
  const isLoaded = loaded?.entry.id === entry.id;
  const size = entry.totalSize ?? entry.files.reduce((n, f) => n + (f.size ?? 0), 0);
  return (
    <article className="card" data-testid="model-card" data-model-id={entry.id} aria-labelledby={`model-${entry.id}`}>
      <header className="card-header">
        <h2 id={`model-${entry.id}`}>{entry.name}</h2>
        {entry.demo && <span className="badge">demo</span>}
        {isLoaded && (
          <span className="badge badge-accent" data-testid="backend-badge">
            {BACKEND_LABEL[loaded.backend]}
          </span>
        )}
      </header>
      <p className="muted">{entry.description}</p>
      <dl className="facts">
        <dt>Size</dt>
        <dd>{size ? formatBytes(size) : 'unknown until fetched'}</dd>
        <dt>Context</dt>
        <dd>{entry.contextLength.toLocaleString()} tokens</dd>
        <dt>Backends</dt>
        <dd>
          WebGPU ({entry.dtype.webgpu}) · WASM ({entry.dtype.wasm})
        </dd>
        <dt>License</dt>
        <dd>{entry.license}</dd>
        <dt>Where</dt>
        <dd data-testid="model-where">{where(entry, state.onDevice)}</dd>
      </dl>
      <div className="actions">
        {!entry.bundled && !state.onDevice && (
          <button type="button" data-testid="model-download" disabled={state.busy} onClick={() => void download(entry).then(refresh)}>
            Download
          </button>
        )}
        <button type="button" className="primary" data-testid="model-load" disabled={state.busy || isLoaded} onClick={() => void load(entry).then(refresh)}>
          {isLoaded ? 'Loaded' : 'Load'}
        </button>
        {state.onDevice && (
          <button type="button" data-testid="model-remove" disabled={state.busy} onClick={() => void removeFromThisDevice(entry)}>
            Remove from device
          </button>
        )}
      </div>
      <div className="status" data-testid="model-status" role="status" aria-live="polite" data-phase={state.phase}>
        {state.phase === 'Failed' ? (
          <p className="error" role="alert">
            {state.error}
          </p>
        ) : state.phase !== 'Idle' || state.message ? (
          <>
            <ol className="phases" data-testid="model-phases" aria-label="Progress">
              {PHASES.map((phase) => (
                <li key={phase} data-done={state.phases.includes(phase)} data-current={state.phase === phase}>
                  {phase}
                </li>
              ))}
            </ol>
            <p>{state.message}</p>
            {(state.phase === 'Preparing' || state.phase === 'Downloading') && state.total > 0 && (
              <>
                <ProgressBar value={state.loaded} max={state.total} label={`${state.phase} ${entry.name}`} />
                <p className="muted">
                  {formatBytes(state.loaded)} of {formatBytes(state.total)}
                  {state.speed > 0 && ` · ${formatBytes(state.speed)}/s`}
                </p>
                <ul className="files">
                  {Object.entries(state.files).map(([file, f]) => (
                    <li key={file}>
                      {file}: {f.total ? `${Math.round((100 * f.loaded) / f.total)}%` : formatBytes(f.loaded)}
                    </li>
                  ))}
                </ul>
              </>
            )}
          </>
        ) : null}
      </div>
    </article>
  );
}

export function ModelsPage() {
  const catalogue = useCatalogue();
  const entries = catalogue.data?.entries;
  const loaded = useLoadedModel();

  useEffect(() => {
    if (entries) void refreshDeviceStatus(entries);
  }, [entries, loaded]);

  return (
    <section aria-labelledby="models-title">
      <div className="page-header">
        <h1 id="models-title">Models</h1>
        <button
          type="button"
          data-testid="model-random"
          disabled={!entries?.length}
          onClick={() => {
            const pick = entries && pickRandomModel(entries);
            if (pick) void load(pick);
          }}
        >
          Get Random Model
        </button>
      </div>
      {catalogue.data?.unreachable && (
        <p className="muted" role="status" data-testid="catalogue-kept" data-fetched-at={catalogue.data.fetchedAt}>
          The server cannot be reached ({catalogue.data.unreachable}): catalogue from {catalogueDate(catalogue.data.fetchedAt)}, kept on this device.
        </p>
      )}
      {catalogue.error && <p role="alert">{catalogue.error.message}</p>}
      {!catalogue.data && !catalogue.error && <p>Reading the catalogue…</p>}
      <div className="grid">
        {entries?.map((entry) => (
          <ModelCard key={entry.id} entry={entry} />
        ))}
      </div>
      <AddModelForm />
      <StoragePanel entries={entries ?? NO_ENTRIES} />
    </section>
  );
}
