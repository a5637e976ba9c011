// Streams a response body into a file's part file: writes batched, bytes counted against the size the Hub
// announced, digests updated on the way, a stalled connection cut, and what arrived before a drop kept for the
// resume (docs/SECURITY.md: downloads).
import { open } from 'node:fs/promises';
import { rm } from 'node:fs/promises';
import { DownloadError, type PlannedFile } from './download-types.ts';
import type { FileDigest } from './file-digest.ts';

/** Socket chunks are 16 to 64 KiB; one write per chunk spends more time in the thread pool than on disk. */
const WRITE_BATCH_BYTES = 1024 * 1024;
const PROGRESS_WRITE_MS = 1000;

export interface PartWrite {
  body: AsyncIterable<Buffer> & { destroy(error?: Error): void };
  partPath: string;
  /** Bytes already in the part file (and already fed to `digest`): writing starts there. */
  offset: number;
  /** The file being written: its `size` bounds the bytes, its `bytesDone` is kept current. */
  file: PlannedFile;
  digest: FileDigest;
  /** Cancel or shutdown: the body is destroyed and the signal's reason thrown. */
  signal: AbortSignal;
  stallTimeoutMs: number;
  /** Each chunk as it arrives (counters, speed). */
  onChunk(bytes: number): void;
  /** About once a second while bytes flow (a progress write; its failure is the caller's to ignore). */
  onCheckpoint(): void;
}

/** Writes the rest of a file into its part file; resolves once every byte is written and synced. */
export async function writePart(options: PartWrite): Promise<void> {
  const { body, partPath, file, digest, signal, stallTimeoutMs } = options;
  const cannotWrite = (error: unknown): never => {
    throw writeFailure(file, error);
  };
  const handle = await open(partPath, options.offset > 0 ? 'r+' : 'w').catch(cannotWrite);
  let written = options.offset;
  let lastCheckpoint = Date.now();
  // One timer checking the time of the last chunk: re-arming a timer per chunk costs more than the chunk.
  let lastData = Date.now();
  const stallTimer = setInterval(
    () => {
      if (Date.now() - lastData >= stallTimeoutMs) {
        body.destroy(new DownloadError('STALLED', `No data for ${stallTimeoutMs} ms; will resume`));
      }
    },
    Math.min(1000, stallTimeoutMs / 4),
  );
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const batch = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await handle.write(batch, 0, batch.length, written).catch(cannotWrite);
    written += batch.length;
  };
  const onAbort = () => body.destroy(new Error('aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of body) {
      lastData = Date.now();
      if (written + pendingBytes + chunk.length > file.size) {
        body.destroy();
        await handle.close();
        await rm(partPath, { force: true });
        throw new DownloadError(
          'SIZE_MISMATCH',
          `${file.path}: the Hub sent more than the ${file.size} bytes it announced`,
        );
      }
      digest.update(chunk);
      pending.push(chunk);
      pendingBytes += chunk.length;
      file.bytesDone += chunk.length;
      options.onChunk(chunk.length);
      if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
      if (Date.now() - lastCheckpoint > PROGRESS_WRITE_MS) {
        lastCheckpoint = Date.now();
        options.onCheckpoint();
      }
    }
    await flush();
    if (written < file.size) {
      throw new DownloadError(
        'HUB_UNREACHABLE',
        `${file.path}: the connection closed at byte ${written} of ${file.size}`,
      );
    }
    await handle.sync().catch(cannotWrite);
  } catch (error) {
    // What arrived before a dropped connection is good data: keep it for the resume.
    if (!(error instanceof DownloadError && error.code === 'SIZE_MISMATCH')) await flush().catch(() => {});
    if (error instanceof DownloadError) throw error;
    if (signal.aborted) throw signal.reason;
    throw new DownloadError('HUB_UNREACHABLE', `${file.path}: ${(error as Error).message}`, { cause: error });
  } finally {
    clearInterval(stallTimer);
    signal.removeEventListener('abort', onAbort);
    await handle.close().catch(() => {});
  }
}

/** A failure to write the cache, said plainly: a full disk is DISK_FULL (and not retried), anything else INTERNAL. */
export function writeFailure(file: Pick<PlannedFile, 'path'>, error: unknown): DownloadError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new DownloadError(
      'DISK_FULL',
      `The disk filled up while saving ${file.path}; free some space and download again`,
      {
        cause: error,
      },
    );
  }
  return new DownloadError('INTERNAL', `Could not save ${file.path}: ${(error as Error).message}`, { cause: error });
}
