// What this device keeps for offline use (the app, ONNX Runtime per backend, each model) and what each costs, with
// the browser's quota, and the setting that loads the last model when the app opens.
import { useEffect, useId, useState } from 'react';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import { Card, CardHeader, CardTitle } from '../../components/ui/card.tsx';
import { Switch } from '../../components/ui/switch.tsx';
import { type KeptItem, type StorageInfo, formatBytes, storageInfo } from '../../lib/device-cache.ts';
import { restoreOnOpen, setRestoreOnOpen } from './last-model.ts';
import type { CatalogueEntry } from './model-store.ts';

function label(item: KeptItem, entries: CatalogueEntry[]): string {
  if (item.kind === 'app') return 'The app (screens and scripts)';
  if (item.kind === 'runtime')
    return `ONNX Runtime for ${BACKEND_LABEL[item.id as keyof typeof BACKEND_LABEL] ?? item.id}`;
  if (item.id === 'other') return 'Models the catalogue no longer lists';
  return entries.find((e) => e.id === item.id)?.name ?? item.id;
}

export function StoragePanel({ entries, kept }: { entries: CatalogueEntry[]; kept: KeptItem[] | null }) {
  const [storage, setStorage] = useState<StorageInfo | null>(null);
  const [restore, setRestore] = useState(restoreOnOpen);
  const restoreId = useId();

  useEffect(() => {
    // The browser's usage changes with what is kept: measured again with it.
    let current = true;
    void storageInfo().then((info) => current && setStorage(info));
    return () => {
      current = false;
    };
  }, [kept]);

  const total = kept?.reduce((n, item) => n + item.bytes, 0) ?? 0;
  return (
    <Card asChild className="mt-6">
      <section aria-labelledby="storage-title" data-testid="storage-panel" data-measured={kept !== null}>
        <CardHeader>
          <CardTitle id="storage-title">Kept on this device for offline use</CardTitle>
        </CardHeader>
        {kept && kept.length === 0 && (
          <p className="m-0 text-sm text-muted">Nothing yet: load a model and it stays here for next time.</p>
        )}
        {kept && kept.length > 0 && (
          <table className="w-full max-w-xl border-collapse text-sm">
            <tbody>
              {kept.map((item) => (
                <tr
                  key={`${item.kind}-${item.id}`}
                  className="border-b border-border"
                  data-testid="storage-row"
                  data-kind={item.kind}
                  data-id={item.id}
                  data-bytes={item.bytes}
                >
                  <td className="py-1 pr-4">{label(item, entries)}</td>
                  <td className="py-1 text-right tabular-nums">{formatBytes(item.bytes)}</td>
                </tr>
              ))}
              <tr>
                <th scope="row" className="py-1 pr-4 text-left font-semibold">
                  In all
                </th>
                <td className="py-1 text-right font-semibold tabular-nums" data-testid="storage-total">
                  {formatBytes(total)}
                </td>
              </tr>
            </tbody>
          </table>
        )}
        {storage && (
          <p className="m-0 text-sm text-muted" data-testid="device-storage">
            This device: {formatBytes(storage.usage)} used of {formatBytes(storage.quota)} available to the app
            {storage.persisted ? ' (persistent)' : ''}
          </p>
        )}
        <div className="flex items-center gap-3">
          <Switch
            id={restoreId}
            data-testid="setting-restore-model"
            checked={restore}
            onCheckedChange={(checked) => {
              setRestoreOnOpen(checked);
              setRestore(checked);
            }}
          />
          <label htmlFor={restoreId} className="text-sm">
            Load the last model when the app opens
          </label>
        </div>
      </section>
    </Card>
  );
}
