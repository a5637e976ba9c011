// What this device keeps for offline use, measured again whenever a model is saved, removed or loaded: the storage
// panel lists it and each model's card shows its own bytes from the same measurement.
import { useEffect, useState } from 'react';
import { type KeptItem, keptForOffline } from '../../lib/device-cache.ts';
import { type CatalogueEntry, deviceModels, keptSignature, onModelStoreChange } from './model-store.ts';

/** The kept items, or null until the first measurement. */
export function useKeptForOffline(entries: CatalogueEntry[]): KeptItem[] | null {
  const [kept, setKept] = useState<KeptItem[] | null>(null);
  useEffect(() => {
    let latest = 0;
    let signature = keptSignature();
    const measure = () => {
      // Only the newest measurement is shown: an older one may finish later.
      const run = ++latest;
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
  return kept;
}
