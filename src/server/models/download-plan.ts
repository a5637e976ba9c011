// What a download fetches: the revision pinned to a commit, and each wanted file matched to the Hub's tree at that
// commit (size, sha256 or git blob id), files already verified in the cache marked ready. A Hub model that lists no
// files gets the ones transformers.js will load (transformers-files.ts).
import { readFile } from 'node:fs/promises';
import type { DownloadDtype, Dtype, ManifestEntry, ManifestFileSchema } from '../../shared/schemas/models.ts';
import { z } from 'zod';
import { DownloadError, type PlannedFile } from './download-types.ts';
import type { HubClient, HubTreeEntry } from './hub-client.ts';
import type { ModelCache } from './model-cache.ts';
import { type Device, ModelConfigSchema, transformersFiles } from './transformers-files.ts';

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
  /** One dtype's files, or `*` for every dtype the entry names. */
  dtype: DownloadDtype;
  signal: AbortSignal;
}

/** The device and dtype pairs a download of `dtype` serves: a dtype may run on either backend, each with its overlay. */
export function downloadTargets(entry: ManifestEntry, dtype: DownloadDtype): { device: Device; dtype: Dtype }[] {
  if (dtype === '*') {
    return [
      { device: 'webgpu', dtype: entry.dtype.webgpu },
      { device: 'wasm', dtype: entry.dtype.wasm },
    ];
  }
  // Files are keyed by dtype: should a `device_config` overlay differ between backends, both are fetched.
  return [
    { device: 'webgpu', dtype },
    { device: 'wasm', dtype },
  ];
}

/**
 * A repo's config.json: from the cache when a verified copy of it is there at this commit (an earlier download of
 * another dtype fetched it), else from the Hub.
 */
export async function readModelConfig(
  hub: HubClient,
  cache: ModelCache,
  repo: string,
  commit: string,
  tree: HubTreeEntry[],
  signal: AbortSignal,
) {
  const configFile = tree.find((t) => t.type === 'file' && t.path === 'config.json');
  if (!configFile) throw new DownloadError('NOT_FOUND', `${repo} has no config.json at ${commit.slice(0, 12)}`);
  const [planned] = planFiles(repo, commit, tree, [{ path: 'config.json' }]);
  const cached = planned ? await cache.verifyCached(repo, commit, planned) : null;
  let text: string;
  if (cached) {
    text = await readFile(cache.filePath(repo, commit, 'config.json'), 'utf8');
  } else {
    text = await hub.repoText(repo, commit, configFile, signal);
    // Kept as the download's verified copy, so the file is fetched from the Hub once.
    if (planned) await cache.keepVerified(repo, commit, planned, Buffer.from(text, 'utf8'));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DownloadError('HUB_ERROR', `config.json of ${repo} is not valid JSON`);
  }
  const parsed = ModelConfigSchema.safeParse(json);
  if (!parsed.success) {
    throw new DownloadError(
      'HUB_ERROR',
      `config.json of ${repo} is not one transformers.js can read: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * The files an entry wants: those it lists, or (a Hub model listing none) the files transformers.js will load for
 * the dtype asked (every dtype the entry names, for `*`), from the repo's config.json and tree at the commit.
 */
async function wantedFiles(options: PlanOptions, commit: string, tree: HubTreeEntry[]) {
  const { hub, cache, entry, dtype, signal } = options;
  if (entry.files.length > 0) return entry.files;
  const config = await readModelConfig(hub, cache, entry.repo, commit, tree, signal);
  const paths = transformersFiles({
    config,
    tree: new Set(tree.filter((t) => t.type === 'file').map((t) => t.path)),
    targets: downloadTargets(entry, dtype),
  });
  return paths.map((path) => ({ path }));
}

/** Resolves the revision to a commit and every file to its size and digest, from the Hub's tree. */
export async function planDownload(options: PlanOptions): Promise<{ commit: string; files: PlannedFile[] }> {
  const { hub, cache, entry, signal } = options;
  const commit = await hub.commit(entry.repo, entry.revision, signal);
  const tree = await hub.tree(entry.repo, commit, signal);
  const wanted = await wantedFiles(options, commit, tree);
  const files = await Promise.all(
    planFiles(entry.repo, commit, tree, wanted).map(async (planned): Promise<PlannedFile> => {
      const cached = await cache.verifyCached(entry.repo, commit, planned);
      return cached ? { ...planned, sha256: cached, bytesDone: planned.size, phase: 'ready' } : planned;
    }),
  );
  return { commit, files };
}
