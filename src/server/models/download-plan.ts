// What a download fetches: the revision pinned to a commit, and each wanted file matched to the Hub's tree at that
// commit (size, sha256 or git blob id), files already verified in the cache marked ready. A Hub model that lists no
// files gets the ones transformers.js will load (transformers-files.ts).
import type { ManifestEntry, ManifestFileSchema } from '../../shared/schemas/models.ts';
import { z } from 'zod';
import { DownloadError, type PlannedFile } from './download-types.ts';
import type { HubClient, HubTreeEntry } from './hub-client.ts';
import type { ModelCache } from './model-cache.ts';
import { ModelConfigSchema, transformersFiles } from './transformers-files.ts';

type WantedFile = z.infer<typeof ManifestFileSchema>;

/** Each wanted file as the tree describes it: a pure decision, refused when a file is missing or differs from a pin. */
export function planFiles(repo: string, commit: string, tree: HubTreeEntry[], wanted: WantedFile[]): PlannedFile[] {
  return wanted.map((file) => {
    const item = tree.find((t) => t.type === 'file' && t.path === file.path);
    if (!item) throw new DownloadError('NOT_FOUND', `${file.path} is not in ${repo} at ${commit.slice(0, 12)}`);
    const sha256 = item.lfs?.oid ?? null;
    if (file.sha256 && sha256 && file.sha256 !== sha256) {
      throw new DownloadError('HASH_MISMATCH', `${file.path} on the Hub differs from the catalogue's pinned sha256`);
    }
    return {
      path: file.path,
      size: item.lfs?.size ?? item.size,
      sha256: file.sha256 ?? sha256,
      gitOid: item.lfs ? null : item.oid,
      bytesDone: 0,
      phase: 'queued',
    };
  });
}

export interface PlanOptions {
  hub: HubClient;
  cache: ModelCache;
  entry: ManifestEntry;
  signal: AbortSignal;
}

/**
 * The files an entry wants: those it lists, or (a Hub model listing none) the files transformers.js will load for
 * the entry's dtypes, from the repo's config.json and tree at the commit.
 */
async function wantedFiles(hub: HubClient, entry: ManifestEntry, commit: string, tree: HubTreeEntry[], signal: AbortSignal) {
  if (entry.files.length > 0) return entry.files;
  const configFile = tree.find((t) => t.type === 'file' && t.path === 'config.json');
  if (!configFile) throw new DownloadError('NOT_FOUND', `${entry.repo} has no config.json at ${commit.slice(0, 12)}`);
  const parsed = ModelConfigSchema.safeParse(await hub.repoJson(entry.repo, commit, configFile, signal));
  if (!parsed.success) {
    throw new DownloadError('HUB_ERROR', `config.json of ${entry.repo} is not one transformers.js can read: ${z.prettifyError(parsed.error)}`);
  }
  const paths = transformersFiles({
    config: parsed.data,
    tree: new Set(tree.filter((t) => t.type === 'file').map((t) => t.path)),
    targets: [
      { device: 'webgpu', dtype: entry.dtype.webgpu },
      { device: 'wasm', dtype: entry.dtype.wasm },
    ],
  });
  return paths.map((path) => ({ path }));
}

/** Resolves the revision to a commit and every file to its size and digest, from the Hub's tree. */
export async function planDownload({ hub, cache, entry, signal }: PlanOptions): Promise<{ commit: string; files: PlannedFile[] }> {
  const commit = await hub.commit(entry.repo, entry.revision, signal);
  const tree = await hub.tree(entry.repo, commit, signal);
  const wanted = await wantedFiles(hub, entry, commit, tree, signal);
  const files = await Promise.all(
    planFiles(entry.repo, commit, tree, wanted).map(async (planned): Promise<PlannedFile> => {
      const cached = await cache.verifyCached(entry.repo, commit, planned);
      return cached ? { ...planned, sha256: cached, bytesDone: planned.size, phase: 'ready' } : planned;
    }),
  );
  return { commit, files };
}
