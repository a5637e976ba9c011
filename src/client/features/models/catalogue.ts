// The model catalogue as the app knows it: the server's answer when it gives one, else the last good copy this
// device kept (IndexedDB), with when that copy was fetched. The app keeps the copy itself, whether or not a service
// worker controlled the page that fetched it, so the first visit is enough for offline use.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { z } from 'zod';
import { type CatalogueEntry, CatalogueEntrySchema } from '../../../shared/schemas/models.ts';
import { localDb } from '../../lib/local-db.ts';
import { trpc } from '../../lib/trpc.ts';

const KEY = 'catalogue';
/** A server that neither answers nor refuses (a captive portal, a dead link) should not hold the screen for long. */
const FETCH_TIMEOUT_MS = 10_000;

const KeptCatalogueSchema = z
  .object({
    entries: z.array(CatalogueEntrySchema).max(500),
    fetchedAt: z.number().int().positive(),
  })
  .strict();

export interface Catalogue {
  entries: CatalogueEntry[];
  /** When the server gave these entries (ms since the epoch). */
  fetchedAt: number;
  /** Null when the server answered just now; else why this device's kept copy is shown instead. */
  unreachable: string | null;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The copy this device kept, or null when it has none (or one this version of the app cannot read). */
export async function keptCatalogue(): Promise<Catalogue | null> {
  const value = await (await localDb()).get('kept', KEY);
  const parsed = KeptCatalogueSchema.safeParse(value);
  return parsed.success ? { ...parsed.data, unreachable: null } : null;
}

async function keep(entries: CatalogueEntry[], fetchedAt: number): Promise<void> {
  const parsed = KeptCatalogueSchema.safeParse({ entries, fetchedAt });
  // A server newer than this app may answer with fields it does not know: show them, but keep no copy it cannot read.
  if (!parsed.success) {
    console.warn(`Not keeping the catalogue for offline use: ${parsed.error.issues[0]?.message ?? 'unexpected shape'}`);
    return;
  }
  await (await localDb()).put('kept', parsed.data, KEY);
}

/** The server's catalogue (kept on the device for next time), else the kept copy, else an error saying both failed. */
export async function fetchCatalogue(): Promise<Catalogue> {
  let reason: string;
  try {
    const entries = await trpc.manifest.list.query(undefined, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    const fetchedAt = Date.now();
    await keep(entries, fetchedAt).catch((error: unknown) =>
      console.warn(`Could not keep the catalogue for offline use: ${describe(error)}`),
    );
    return { entries, fetchedAt, unreachable: null };
  } catch (error) {
    reason = describe(error);
  }
  const kept = await keptCatalogue().catch(() => null);
  if (!kept)
    throw new Error(
      `Could not read the catalogue: ${reason}. This device has no copy of it yet: connect once to fetch it.`,
    );
  return { ...kept, unreachable: reason };
}

export const CATALOGUE_QUERY_KEY = ['catalogue'] as const;

/** The catalogue; `enabled: false` asks for nothing until it is needed (what is cached is still shown). */
export function useCatalogue({ enabled = true }: { enabled?: boolean } = {}) {
  // `always`: offline, the query must still run to fall back on the kept copy, not wait paused for the network.
  return useQuery({
    queryKey: CATALOGUE_QUERY_KEY,
    queryFn: fetchCatalogue,
    networkMode: 'always',
    retry: false,
    enabled,
  });
}

/** Reads the catalogue again (after a download the server holds a model pinned to a commit). */
export function useRefreshCatalogue(): () => void {
  const client = useQueryClient();
  return () => void client.invalidateQueries({ queryKey: CATALOGUE_QUERY_KEY });
}

export function catalogueDate(fetchedAt: number): string {
  return new Date(fetchedAt).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
