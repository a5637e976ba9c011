// What this device keeps for offline use (the app, ONNX Runtime per backend, each model) and what each costs, with
// the browser's quota, and the setting that loads the last model when the app opens.
import { useEffect, useState } from 'react';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import { type KeptItem, type StorageInfo, formatBytes, keptForOffline, storageInfo } from '../../lib/device-cache.ts';
import { restoreOnOpen, setRestoreOnOpen } from './last-model.ts';
import { type CatalogueEntry, deviceModels, keptSignature, onModelStoreChange } from './model-store.ts';

function label(item: KeptItem, entries: CatalogueEntry[]): string {
  if (item.kind === 'app') return 'The app (screens and scripts)';
  if (item.kind === 'runtime') return `ONNX Runtime for ${BACKEND_LABEL[item.id as keyof typeof BACKEND_LABEL] ?? item.id}`;
  if (item.id === 'other') return 'Models the catalogue no longer lists';
  return entries.find((e) => e.id === item.id)?.name ?? item.id;
}

export function StoragePanel({ entries }: { entries: CatalogueEntry[] }) {
  const [storage, setStorage] = useState<StorageInfo | null>(null);
  const [kept, setKept] = useState<KeptItem[] | null>(null);
  const [restore, setRestore] = useState(restoreOnOpen);

  useEffect(() => {
    let latest = 0;
    let signature = keptSignature();
    const measure = () => {
      // Only the newest measurement is shown: an older one may finish later.
      const run = ++latest;
      void storageInfo().then((info) => run === latest && setStorage(info));
      void keptForOffline(deviceModels(entries)).then(
        (items) => run === latest && setKept(items),
        () => run === latest && setKept([]),
      );
    };
    measure();
    // Saves, removals and what a load keeps change what is kept; progress ticks do not.
    const unsubscribe = onModelStoreChange(() => {
      const next = keptSignature();
      if (next === signature) return;
      signature = next;
      measure();
    });
    return () => {
      latest = -1;
      unsubscribe();
    };
  }, [entries]);

  const total = kept?.reduce((n, item) => n + item.bytes, 0) ?? 0;
  return (
    <section className="card storage" aria-labelledby="storage-title" data-testid="storage-panel" data-measured={kept !== null}>
      <h2 id="storage-title">Kept on this device for offline use</h2>
      {kept && kept.length === 0 && <p className="muted">Nothing yet: load a model and it stays here for next time.</p>}
      {kept && kept.length > 0 && (
        <table>
          <tbody>
            {kept.map((item) => (
              <tr key={`${item.kind}-${item.id}`} data-testid="storage-row" data-kind={item.kind} data-id={item.id} data-bytes={item.bytes}>
                <td>{label(item, entries)}</td>
                <td className="numeric">{formatBytes(item.bytes)}</td>
              </tr>
            ))}
            <tr>
              <th scope="row">In all</th>
              <td className="numeric" data-testid="storage-total">
                {formatBytes(total)}
              </td>
            </tr>
          </tbody>
        </table>
      )}
      {storage && (
        <p className="muted" data-testid="device-storage">
          This device: {formatBytes(storage.usage)} used of {formatBytes(storage.quota)} available to the app
          {storage.persisted ? ' (persistent)' : ''}
        </p>
      )}
      <label>
        <input
          type="checkbox"
          data-testid="setting-restore-model"
          checked={restore}
          onChange={(event) => {
            setRestoreOnOpen(event.target.checked);
            setRestore(event.target.checked);
          }}
        />{' '}
        Load the last model when the app opens
      </label>
    </section>
  );
}
