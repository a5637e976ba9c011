// What the download pieces share: the domain error (routers map its code) and the status shapes.
import type { DownloadErrorCode, DownloadPhase } from '../../shared/schemas/models.ts';

export class DownloadError extends Error {
  override name = 'DownloadError';
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
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
