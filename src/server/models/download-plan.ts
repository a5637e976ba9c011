// What a download fetches: the revision pinned to a commit, and each wanted file matched to the Hub's tree at that
// commit (size, sha256 or git blob id), files already verified in the cache marked ready.
import type { ManifestEntry, ManifestFileSchema } from '../../shared/schemas/models.ts';
import type { z } from 'zod';
import { DownloadError, type PlannedFile } from './download-types.ts';
import type { HubClient, HubTreeEntry } from './hub-client.ts';
import type { ModelCache } from './model-cache.ts';

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

/** Resolves the revision to a commit and every file to its size and digest, from the Hub's tree. */
export async function planDownload({ hub, cache, entry, signal }: PlanOptions): Promise<{ commit: string; files: PlannedFile[] }> {
  const commit = await hub.commit(entry.repo, entry.revision, signal);
  const tree = await hub.tree(entry.repo, commit, signal);
  const files = await Promise.all(
    planFiles(entry.repo, commit, tree, entry.files).map(async (planned): Promise<PlannedFile> => {
      const cached = await cache.verifyCached(entry.repo, commit, planned);
      return cached ? { ...planned, sha256: cached, bytesDone: planned.size, phase: 'ready' } : planned;
    }),
  );
  return { commit, files };
}
