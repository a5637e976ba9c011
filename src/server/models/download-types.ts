// What the download pieces share: the domain error (routers map its code, asDownloadError names any failure as one)
// and the status shapes.
import type { DownloadDtype, DownloadErrorCode, DownloadPhase, ManifestEntry } from '../../shared/schemas/models.ts';
import { FetchError } from './safe-fetch.ts';

/** A download is of one model's dtype (or `*`, every dtype the entry names): its cache and status are its own. */
export interface DownloadKey {
  modelId: string;
  dtype: DownloadDtype;
}

export const keyString = (key: DownloadKey): string => `${key.modelId}:${key.dtype}`;

export class DownloadError extends Error {
  override name = 'DownloadError';
  /** How long the Hub asked to be left alone (its `Retry-After`), when it said. */
  readonly retryAfterMs: number | null;
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    options?: ErrorOptions & { retryAfterMs?: number | null },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs ?? null;
  }
}

export interface FileStatus {
  path: string;
  size: number;
  bytesDone: number;
  phase: DownloadPhase;
}

export interface DownloadStatus {
  id: string;
  /** The dtype whose files this download fetches, or `*`. */
  dtype: DownloadDtype;
  repo: string;
  /** The pinned commit, once resolved. */
  revision: string | null;
  phase: DownloadPhase;
  bytesDone: number;
  bytesTotal: number;
  /** Bytes per second over the last few seconds. */
  speed: number;
  files: FileStatus[];
  error: { code: DownloadErrorCode; message: string } | null;
}

/** A file to fetch, with what the Hub's tree says its bytes are: a sha256 (LFS) or a git blob id (small files). */
export interface PlannedFile extends FileStatus {
  sha256: string | null;
  gitOid: string | null;
}

/** A download's status before anything is known of its files. */
export function queuedStatus(entry: Pick<ManifestEntry, 'id' | 'repo'>, key: DownloadKey): DownloadStatus {
  return {
    id: entry.id,
    dtype: key.dtype,
    repo: entry.repo,
    revision: null,
    phase: 'queued',
    bytesDone: 0,
    bytesTotal: 0,
    speed: 0,
    files: [],
    error: null,
  };
}

/** How a download ended badly, as the error its status names: a fetch's own code, anything unforeseen INTERNAL. */
export function asDownloadError(reason: unknown): DownloadError {
  if (reason instanceof DownloadError) return reason;
  if (reason instanceof FetchError) return new DownloadError(reason.code, reason.message);
  return new DownloadError('INTERNAL', 'Download failed unexpectedly', { cause: reason });
}
