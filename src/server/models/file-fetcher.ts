// One file of a download, from the Hub into the verified cache: one writer per part file however many downloads
// need it (two dtypes of a model share config and tokenizer files), resumption with Range from the part file's
// size, retries of what a resume can fix, and the atomic rename only after the digest matches (docs/SECURITY.md:
// downloads). The orchestrator (downloader.ts) owns the download's status; this module reports bytes to it.
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { DownloadError, type PlannedFile } from './download-types.ts';
import { FileDigest, hashExisting } from './file-digest.ts';
import type { HubClient } from './hub-client.ts';
import { MAX_RETRY_AFTER_MS } from './hub-errors.ts';
import type { ModelCache } from './model-cache.ts';
import { writePart } from './part-writer.ts';
import { FetchError } from './safe-fetch.ts';

const RETRIABLE = new Set(['HUB_UNREACHABLE', 'STALLED']);
export const MAX_ATTEMPTS = 4;

export interface FileFetcherOptions {
  hub: HubClient;
  cache: ModelCache;
  log: FastifyBaseLogger;
  stallTimeoutMs: number;
}

/** A file of `repo` at `commit`, fetched for the model `modelId` (named in logs). */
export interface FileTarget {
  modelId: string;
  repo: string;
  commit: string;
  file: PlannedFile;
}

/** How a fetch reports to the download it serves. */
export interface FetchProgress {
  /** Cancel or shutdown of that download. */
  signal: AbortSignal;
  /** The file's bytes done moved by `bytes` (negative when a resume starts over); `streamed` when they just arrived. */
  moved(bytes: number, streamed: boolean): void;
  /** About once a second while bytes flow: a progress write, whose failure is the download's to ignore. */
  checkpoint(): void;
}

/**
 * How long to wait before attempt `attempt + 1` after `error`, or null when it is not worth another: a dropped or
 * stalled connection resumes with backoff; a 429 is waited out when the Hub asks for a short wait (docs/SECURITY.md),
 * a long one fails, naming it; anything else fails at once.
 */
export function retryWait(error: unknown, attempt: number): number | null {
  const code = error instanceof DownloadError || error instanceof FetchError ? error.code : null;
  const wait = error instanceof DownloadError ? (error.retryAfterMs ?? 0) : 0;
  const retriable = code !== null && (RETRIABLE.has(code) || (code === 'RATE_LIMITED' && wait <= MAX_RETRY_AFTER_MS));
  if (!retriable || attempt >= MAX_ATTEMPTS) return null;
  return Math.max(200 * 2 ** attempt, wait);
}

export class FileFetcher {
  /** Files being fetched, by repo, commit and path. */
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly options: FileFetcherOptions) {}

  /**
   * Fetches a file unless another download (another dtype of the model) is fetching it: then waits for that one and
   * takes its verified copy. One writer per part file.
   */
  async fetch(target: FileTarget, progress: FetchProgress): Promise<void> {
    const { repo, commit, file } = target;
    const fileKey = [repo, commit, file.path].join('\0');
    const takeCached = async () => {
      const sha256 = await this.options.cache.verifyCached(repo, commit, file);
      if (!sha256) return false;
      progress.moved(file.size - file.bytesDone, false);
      Object.assign(file, { bytesDone: file.size, sha256, phase: 'ready' });
      return true;
    };
    // Another download may have finished the file since this one was planned.
    if (!this.inFlight.has(fileKey) && (await takeCached())) return;
    for (let other = this.inFlight.get(fileKey); other; other = this.inFlight.get(fileKey)) {
      await other.catch(() => undefined);
      progress.signal.throwIfAborted();
      if (await takeCached()) return;
    }
    const mine = this.withRetries(target, progress);
    this.inFlight.set(fileKey, mine);
    try {
      await mine;
    } finally {
      if (this.inFlight.get(fileKey) === mine) this.inFlight.delete(fileKey);
    }
  }

  private async withRetries(target: FileTarget, progress: FetchProgress): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.once(target, progress);
        return;
      } catch (error) {
        const wait = retryWait(error, attempt);
        if (progress.signal.aborted || wait === null) throw error;
        const code = (error as DownloadError | FetchError).code;
        this.options.log.warn(
          { model: target.modelId, file: target.file.path, attempt, code },
          'download interrupted; resuming',
        );
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  private async once({ repo, commit, file }: FileTarget, progress: FetchProgress): Promise<void> {
    const { cache, hub } = this.options;
    const partPath = cache.partPath(repo, commit, file.path);
    await mkdir(path.dirname(partPath), { recursive: true });
    let offset = await cache.partSize(repo, commit, file.path);
    if (offset > file.size) {
      await rm(partPath, { force: true });
      offset = 0;
    }
    let digest = new FileDigest(file);
    await hashExisting(partPath, offset, digest);

    file.phase = 'downloading';
    if (file.size === 0) await writeFile(partPath, '');
    if (offset < file.size) {
      const { body, resumed } = await hub.file(repo, commit, file, offset, progress.signal);
      if (!resumed && offset > 0) {
        // A 200 to a Range request: the server sends the whole file, so start the file over.
        offset = 0;
        digest = new FileDigest(file);
      }
      progress.moved(offset - file.bytesDone, false);
      file.bytesDone = offset;
      await writePart({
        body,
        partPath,
        offset,
        file,
        digest,
        signal: progress.signal,
        stallTimeoutMs: this.options.stallTimeoutMs,
        onChunk: (bytes) => progress.moved(bytes, true),
        onCheckpoint: () => progress.checkpoint(),
      });
    }

    file.phase = 'verifying';
    const sha256 = digest.verify();
    if (!sha256) {
      await rm(partPath, { force: true });
      const expected = file.sha256 ? 'sha256' : 'git blob id';
      throw new DownloadError(
        'HASH_MISMATCH',
        `${file.path} does not match its ${expected}; the corrupt copy was deleted`,
      );
    }
    const finalPath = cache.filePath(repo, commit, file.path);
    await mkdir(path.dirname(finalPath), { recursive: true });
    await rename(partPath, finalPath);
    file.sha256 = sha256;
    file.phase = 'ready';
  }
}
