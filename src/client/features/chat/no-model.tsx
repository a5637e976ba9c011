// Chat with no model loaded: the last model coming back by itself (with its progress), why it could not, and a
// one-click load of the bundled demo model right here, with its progress, instead of a trip to the Models screen.
import { Link } from 'wouter';
import { ProgressBar } from '../../components/progress-bar.tsx';
import { formatBytes } from '../../lib/device-cache.ts';
import { useCatalogue } from '../models/catalogue.ts';
import { type CatalogueEntry, load, useModelState } from '../models/model-store.ts';
import { useRestore } from '../models/restore.ts';

function LoadProgress({ entry, testId }: { entry: CatalogueEntry; testId: string }) {
  const state = useModelState(entry.id);
  if (!state.busy && state.phase !== 'Failed') return null;
  if (state.phase === 'Failed') {
    return (
      <p className="error" role="alert" data-testid={`${testId}-error`}>
        Could not load {entry.name}: {state.error}
      </p>
    );
  }
  return (
    <div role="status" aria-live="polite" data-testid={testId} data-phase={state.phase}>
      <p className="small">
        {state.phase}: {state.message}
      </p>
      <ProgressBar value={state.loaded} max={state.total} label={`${state.phase} ${entry.name}`} />
    </div>
  );
}

export function NoModelOffer() {
  const restore = useRestore();
  const catalogue = useCatalogue();
  const entries = catalogue.data?.entries ?? [];
  const demo = entries.find((e) => e.bundled && e.demo) ?? entries.find((e) => e.bundled);
  const demoState = useModelState(demo?.id ?? '');
  if (restore.state === 'restoring') {
    return (
      <div className="card no-model" data-testid="chat-restore">
        <p>Loading {restore.entry.name}, the model you used last…</p>
        <LoadProgress entry={restore.entry} testId="chat-restore-progress" />
      </div>
    );
  }
  const size = demo && (demo.totalSize ?? demo.files.reduce((n, f) => n + (f.size ?? 0), 0));
  return (
    <div className="card no-model" data-testid="chat-no-model">
      {restore.state === 'failed' && (
        <p className="error" role="alert" data-testid="chat-restore-error">
          Could not load {restore.name} again: {restore.reason}. Pick a model below or on the Models screen.
        </p>
      )}
      <p>No model is loaded on this device yet.</p>
      {demo ? (
        <>
          <button
            type="button"
            className="primary"
            data-testid="chat-load-demo"
            disabled={demoState.busy}
            onClick={() => void load(demo)}
          >
            Load the demo model ({demo.name}
            {size ? `, ${formatBytes(size)}` : ''})
          </button>
          <LoadProgress entry={demo} testId="chat-load-progress" />
        </>
      ) : (
        catalogue.error && <p className="error">{catalogue.error.message}</p>
      )}
      <p className="small muted">
        Or <Link href="/models">choose another model</Link>: it stays on this device, so next time it loads with no
        network.
      </p>
    </div>
  );
}
