// The catalogue a person sees: the built-in (or MANIFEST_PATH) entries, then the models they added by repo id and
// those an operator added for everyone, each with what the server holds of it: its finished downloads, one per dtype.
import {
  type CachedDownload,
  type DownloadDtype,
  DownloadDtypeSchema,
  type Dtype,
  type DtypeSize,
  type ManifestEntry,
  type ModelDownloadInput,
} from '../../shared/schemas/models.ts';
import { WITHOUT_F16 } from '../../shared/device-dtype.ts';
import type { PrismaClient } from '../db/client.ts';
import { ServiceError } from '../services/errors.ts';
import { findAddedModel, visibleAddedModels } from '../services/user-models.ts';

export interface CatalogueSource {
  entry: ManifestEntry;
  addedBy?: 'you' | 'operator';
  sizes?: DtypeSize[];
}

/** The entry `id` as `viewerId` sees it (null: a caller with no session sees only what everyone sees). */
export async function findEntry(
  db: PrismaClient,
  manifest: ManifestEntry[],
  id: string,
  viewerId: string | null,
): Promise<CatalogueSource> {
  const builtin = manifest.find((m) => m.id === id);
  if (builtin) return { entry: builtin };
  const added = await findAddedModel(db, id, viewerId);
  if (!added) throw new ServiceError('NOT_FOUND', `No model ${id} in the catalogue`);
  return added;
}

/**
 * The dtype a download fetches: the one named (if the entry runs it on some device), else the entry's dtype for the
 * named backend, else `*` (every dtype the entry names). An entry that lists its files always downloads them all.
 */
export function downloadDtype(source: CatalogueSource, input: Omit<ModelDownloadInput, 'id'>): DownloadDtype {
  const { entry } = source;
  if (entry.files.length > 0) return '*';
  if (input.dtype) {
    const runs = new Set<Dtype>([entry.dtype.webgpu, entry.dtype.wasm]);
    const instead = WITHOUT_F16[entry.dtype.webgpu];
    if (instead) runs.add(instead);
    for (const size of source.sizes ?? []) runs.add(size.dtype);
    if (!runs.has(input.dtype)) {
      throw new ServiceError('INVALID', `${entry.name} runs ${[...runs].join(', ')}, not ${input.dtype}`);
    }
    return input.dtype;
  }
  return input.backend ? entry.dtype[input.backend] : '*';
}

/** The catalogue with where the server holds each model (its finished downloads, per dtype). */
export async function listCatalogue(db: PrismaClient, manifest: ManifestEntry[], viewerId: string | null) {
  const added = await visibleAddedModels(db, viewerId);
  const sources: CatalogueSource[] = [...manifest.map((entry) => ({ entry })), ...added];
  const rows = await db.modelDownload.findMany({
    where: { modelId: { in: sources.map((s) => s.entry.id) } },
    select: {
      modelId: true,
      dtype: true,
      phase: true,
      revision: true,
      bytesTotal: true,
      updatedAt: true,
      files: { select: { path: true, size: true }, orderBy: { path: 'asc' } },
    },
    orderBy: { updatedAt: 'desc' },
  });
  return sources.map(({ entry, addedBy, sizes }) => {
    const mine = rows.filter((row) => row.modelId === entry.id);
    const downloads: CachedDownload[] = mine.flatMap((row) => {
      const dtype = DownloadDtypeSchema.safeParse(row.dtype);
      if (row.phase !== 'READY' || !dtype.success) return [];
      const files = row.files.map((f) => ({ path: f.path, size: Number(f.size) }));
      return [{ dtype: dtype.data, revision: row.revision, files, totalSize: Number(row.bytesTotal) }];
    });
    // The fields from before dtypes were fetched one by one: the largest finished download stands for the model.
    const main = [...downloads].sort((a, b) => b.totalSize - a.totalSize)[0];
    const latest = mine[0];
    return {
      ...entry,
      // A Hub model's files are derived on download (transformers-files.ts): listed once the server holds them.
      files: entry.files.length > 0 || !main ? entry.files : main.files,
      totalSize: main ? main.totalSize : entry.files.reduce((sum, f) => sum + (f.size ?? 0), 0) || null,
      cachedRevision: main?.revision ?? null,
      serverStatus: entry.bundled
        ? ('bundled' as const)
        : main
          ? ('cached' as const)
          : latest
            ? latest.phase.toLowerCase()
            : ('remote' as const),
      downloads,
      ...(addedBy ? { addedBy } : {}),
      ...(sizes ? { sizes } : {}),
    };
  });
}
