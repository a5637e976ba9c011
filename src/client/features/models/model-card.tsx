// One model of the catalogue: what it is, where it is (bundled, on the server, on this device, with its bytes here),
// Download / Cancel / Load / Unload / Remove from device, and the load phases in words and bars.
import type { ReactNode } from 'react';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import { ProgressBar } from '../../components/progress-bar.tsx';
import { Badge } from '../../components/ui/badge.tsx';
import { Button } from '../../components/ui/button.tsx';
import { Card, CardHeader, CardTitle } from '../../components/ui/card.tsx';
import { cn } from '../../lib/cn.ts';
import { formatBytes } from '../../lib/device-cache.ts';
import { type PipelineModel, stagesText } from '../mesh/room-pipelines.ts';
import { useRefreshCatalogue } from './catalogue.ts';
import {
  type CatalogueEntry,
  cancelDownload,
  download,
  downloading,
  load,
  removeFromThisDevice,
  unload,
  useLoadedModel,
  useModelState,
} from './model-store.ts';

const PHASES = ['Fetching', 'Preparing', 'Downloading', 'Loading', 'Ready'] as const;

function where(entry: CatalogueEntry, onDevice: boolean): string {
  const parts = [
    entry.bundled ? 'bundled with the app' : entry.serverStatus === 'cached' ? 'cached on the server' : 'on the Hub',
  ];
  if (onDevice) parts.push('on this device');
  return parts.join(' · ');
}

function Fact({ term, children, ...props }: { term: string; children: ReactNode; 'data-testid'?: string }) {
  return (
    <>
      <dt className="text-muted">{term}</dt>
      <dd className="m-0 min-w-0 [overflow-wrap:anywhere]" {...props}>
        {children}
      </dd>
    </>
  );
}

/**
 * `deviceBytes`: what its files take on this device (null until measured, 0 when none are here). `pipeline`: the
 * room's peers run it across their stages (and nobody there shares it whole).
 */
export function ModelCard({
  entry,
  deviceBytes,
  pipeline,
}: {
  entry: CatalogueEntry;
  deviceBytes: number | null;
  pipeline?: PipelineModel;
}) {
  const state = useModelState(entry.id);
  // After a download the server holds the model pinned to a commit: read the catalogue again.
  const refresh = useRefreshCatalogue();
  const loaded = useLoadedModel();
  const isLoaded = loaded?.entry.id === entry.id;
  const size = entry.totalSize ?? entry.files.reduce((n, f) => n + (f.size ?? 0), 0);
  const cancellable = state.busy && downloading(entry.id);
  return (
    <Card asChild>
      <article data-testid="model-card" data-model-id={entry.id} aria-labelledby={`model-${entry.id}`}>
        <CardHeader>
          <CardTitle id={`model-${entry.id}`}>{entry.name}</CardTitle>
          {entry.demo && <Badge>demo</Badge>}
          {isLoaded && (
            <Badge variant="accent" data-testid="backend-badge">
              {BACKEND_LABEL[loaded.backend]}
            </Badge>
          )}
        </CardHeader>
        <p className="m-0 text-sm text-muted">{entry.description}</p>
        <dl className="m-0 grid grid-cols-[max-content_1fr] gap-x-3 gap-y-1 text-sm">
          <Fact term="Size">{size ? formatBytes(size) : 'unknown until fetched'}</Fact>
          <Fact term="Context">{entry.contextLength.toLocaleString()} tokens</Fact>
          <Fact term="Backends">
            WebGPU ({entry.dtype.webgpu}) · WASM ({entry.dtype.wasm})
          </Fact>
          <Fact term="License">{entry.license}</Fact>
          <Fact term="Where" data-testid="model-where">
            {where(entry, state.onDevice)}
          </Fact>
          {pipeline && (
            <Fact term="Room" data-testid="model-pipeline">
              <span title={stagesText(pipeline.stages)}>runs across {pipeline.stages.length} peers in this room</span>
            </Fact>
          )}
          {deviceBytes !== null && deviceBytes > 0 && (
            <>
              <dt className="text-muted">On this device</dt>
              <dd className="m-0" data-testid="model-device-bytes" data-bytes={deviceBytes}>
                {formatBytes(deviceBytes)}
              </dd>
            </>
          )}
        </dl>
        <div className="flex flex-wrap gap-2">
          {!entry.bundled && !state.onDevice && !cancellable && (
            <Button
              data-testid="model-download"
              disabled={state.busy}
              onClick={() => void download(entry).then(refresh)}
            >
              Download
            </Button>
          )}
          {cancellable && (
            <Button variant="destructive" data-testid="model-cancel" onClick={() => void cancelDownload(entry)}>
              Cancel download
            </Button>
          )}
          {isLoaded ? (
            <Button data-testid="model-unload" disabled={state.busy} onClick={() => void unload()}>
              Unload
            </Button>
          ) : null}
          <Button
            variant="default"
            data-testid="model-load"
            disabled={state.busy || isLoaded}
            onClick={() => void load(entry).then(refresh)}
          >
            {isLoaded ? 'Loaded' : 'Load'}
          </Button>
          {state.onDevice && (
            <Button
              variant="destructive"
              data-testid="model-remove"
              disabled={state.busy}
              onClick={() => void removeFromThisDevice(entry)}
            >
              Remove from device
            </Button>
          )}
        </div>
        <div className="text-sm" data-testid="model-status" role="status" aria-live="polite" data-phase={state.phase}>
          {state.phase === 'Failed' ? (
            <p className="m-0 text-destructive" role="alert">
              {state.error}
            </p>
          ) : state.phase !== 'Idle' || state.message ? (
            <div className="flex flex-col gap-2">
              <ol
                className="m-0 flex list-none flex-wrap gap-1 p-0 text-xs"
                data-testid="model-phases"
                aria-label="Progress"
              >
                {PHASES.map((phase, i) => (
                  <li
                    key={phase}
                    data-done={state.phases.includes(phase)}
                    data-current={state.phase === phase}
                    className={cn(
                      'text-muted',
                      state.phases.includes(phase) && 'text-foreground',
                      state.phase === phase && 'font-semibold text-primary',
                    )}
                  >
                    {i > 0 && (
                      <span aria-hidden="true" className="mr-1 text-muted">
                        ›
                      </span>
                    )}
                    {phase}
                  </li>
                ))}
              </ol>
              <p className="m-0 [overflow-wrap:anywhere]">{state.message}</p>
              {(state.phase === 'Preparing' || state.phase === 'Downloading') && state.total > 0 && (
                <>
                  <ProgressBar value={state.loaded} max={state.total} label={`${state.phase} ${entry.name}`} />
                  <p className="m-0 text-muted">
                    {formatBytes(state.loaded)} of {formatBytes(state.total)}
                    {state.speed > 0 && ` · ${formatBytes(state.speed)}/s`}
                  </p>
                  <ul className="m-0 pl-4 text-xs text-muted">
                    {Object.entries(state.files).map(([file, f]) => (
                      <li key={file} className="[overflow-wrap:anywhere]">
                        {file}: {f.total ? `${Math.round((100 * f.loaded) / f.total)}%` : formatBytes(f.loaded)}
                      </li>
                    ))}
                  </ul>
                </>
              )}
            </div>
          ) : null}
        </div>
      </article>
    </Card>
  );
}
