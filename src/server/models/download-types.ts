// What the download pieces share: the domain error (routers map its code) and the status shapes.
import type { DownloadDtype, DownloadErrorCode, DownloadPhase } from '../../shared/schemas/models.ts';

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
