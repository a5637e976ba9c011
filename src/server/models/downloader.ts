// Server-side model downloads from the Hub into a verified cache (docs/SECURITY.md): one upstream fetch
// per model however many ask, a cap on concurrent downloads, a free-disk check, sizes enforced and sha256 (or
// the git blob id, for small non-LFS files) computed while streaming, an atomic rename only after the digest
// matches, and resumption with Range after a restart. State lives in the database; progress in memory.
// This is the orchestrator: the Hub (hub-client.ts), the disk (model-cache.ts), the rows (download-repository.ts)
// and the bytes (part-writer.ts) are each their own module.
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { type DownloadDtype, DownloadDtypeSchema, type ManifestEntry } from '../../shared/schemas/models.ts';
import type { PrismaClient } from '../db/client.ts';
import type { Dependency } from '../dependencies/dependency.ts';
import { DownloadRepository } from './download-repository.ts';
import { DownloadError, type DownloadKey, type DownloadStatus, type PlannedFile, keyString } from './download-types.ts';
import { planDownload } from './download-plan.ts';
import { FileDigest, hashExisting } from './file-digest.ts';
import { HubClient } from './hub-client.ts';
import { MAX_RETRY_AFTER_MS } from './hub-errors.ts';
import { ModelCache } from './model-cache.ts';
import { writePart } from './part-writer.ts';
import { FetchError } from './safe-fetch.ts';
import { SlotQueue } from './slot-queue.ts';
import { SpeedMeter } from './speed-meter.ts';

export { DownloadError, type DownloadKey, type DownloadStatus, type FileStatus } from './download-types.ts';

export interface DownloaderOptions {
  db: PrismaClient;
  /** The database's availability: a download's state written while it is down waits for it (see `record`). */
  database: Pick<Dependency, 'whenUp'>;
  log: FastifyBaseLogger;
  cacheDir: string;
  hubOrigin: string;
  token?: string | undefined;
  concurrency: number;
  stallTimeoutMs: number;
  maxRedirects: number;
  diskMarginBytes: number;
}

interface ActiveDownload {
  key: DownloadKey;
  status: DownloadStatus;
  controller: AbortController;
  done: Promise<void>;
  speed: SpeedMeter;
}

const RETRIABLE = new Set(['HUB_UNREACHABLE', 'STALLED']);
const MAX_ATTEMPTS = 4;
const SHUTDOWN = 'shutdown';

export class ModelDownloader {
  private readonly active = new Map<string, ActiveDownload>();
  private readonly starting = new Map<string, Promise<DownloadStatus>>();
  /** Files being fetched, by repo, commit and path: two dtypes' downloads share config and tokenizer files. */
  private readonly fileFetches = new Map<string, Promise<void>>();
  /** The last plan of each repo under way (see onePlanAtATime). */
  private readonly plans = new Map<string, Promise<void>>();
  private readonly slots: SlotQueue;
  /** Aborted at shutdown: state writes waiting for the database give up (the next start resumes from what was written). */
  private readonly closing = new AbortController();
  private readonly hub: HubClient;
  private readonly cache: ModelCache;
  private readonly rows: DownloadRepository;

  constructor(private readonly options: DownloaderOptions) {
    this.hub = new HubClient({
      origin: options.hubOrigin,
      token: options.token,
      maxRedirects: options.maxRedirects,
      timeoutMs: options.stallTimeoutMs,
    });
    this.cache = new ModelCache(options.cacheDir, options.diskMarginBytes);
    this.rows = new DownloadRepository(options.db, options.database);
    this.slots = new SlotQueue(options.concurrency);
  }

  /** Where a verified file of `repo` at `commit` lives; inside the cache directory by construction. */
  filePath(repo: string, commit: string, file: string): string {
    return this.cache.filePath(repo, commit, file);
  }

  /**
   * Starts the download of `entry`'s files for `dtype` (`*`: every dtype the entry names), or joins the one in
   * progress. Each dtype is its own download, with its own status; files two dtypes share are fetched once.
   */
  start(
    entry: ManifestEntry,
    requestedById: string | null = null,
    dtype: DownloadDtype = '*',
  ): Promise<DownloadStatus> {
    const key: DownloadKey = { modelId: entry.id, dtype: entry.files.length > 0 ? '*' : dtype };
    // Registered before the first await, so callers arriving together share one start (one upstream fetch).
    let starting = this.starting.get(keyString(key));
    if (!starting) {
      starting = this.startOnce(entry, key, requestedById).finally(() => this.starting.delete(keyString(key)));
      this.starting.set(keyString(key), starting);
    }
    return starting;
  }

  private async startOnce(
    entry: ManifestEntry,
    key: DownloadKey,
    requestedById: string | null,
  ): Promise<DownloadStatus> {
    const current = this.active.get(keyString(key));
    if (current) return current.status;
    const ready = await this.rows.ready(key);
    if (ready && (await this.cache.hasAll(ready.repo, ready.revision, ready.files))) {
      return (await this.status(key.modelId, key.dtype)) as DownloadStatus;
    }
    const status: DownloadStatus = {
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
    await this.rows.queue(entry, key, requestedById);
    const controller = new AbortController();
    const active: ActiveDownload = { key, status, controller, speed: new SpeedMeter(), done: Promise.resolve() };
    this.active.set(keyString(key), active);
    active.done = this.run(entry, active)
      .catch((error: unknown) =>
        this.options.log.error({ err: error, model: entry.id }, 'model download bookkeeping failed'),
      )
      .finally(() => this.active.delete(keyString(key)));
    return status;
  }

  /** Resolves when the downloads of `id` (of `dtype`, or all of them) have ended, however they ended. */
  async settled(id: string, dtype?: DownloadDtype): Promise<void> {
    await Promise.all(this.activeOf(id, dtype).map((active) => active.done));
  }

  async status(id: string, dtype: DownloadDtype = '*'): Promise<DownloadStatus | null> {
    const active = this.active.get(keyString({ modelId: id, dtype }));
    if (active) return { ...active.status, files: active.status.files.map((f) => ({ ...f })) };
    return this.rows.status({ modelId: id, dtype });
  }

  /** Stops a model's download of `dtype` (all of its downloads when none is named) and deletes their partial files. */
  async cancel(id: string, dtype?: DownloadDtype): Promise<boolean> {
    const running = this.activeOf(id, dtype);
    for (const active of running) active.controller.abort(new DownloadError('CANCELLED', 'Download cancelled'));
    await Promise.all(running.map((active) => active.done));
    return running.length > 0;
  }

  /** Deletes a model's cached files, every dtype, and their records. */
  async remove(id: string): Promise<boolean> {
    await this.cancel(id);
    const locations = await this.rows.locations(id);
    if (locations.length === 0) return false;
    for (const location of locations) {
      if (location.commit) await this.cache.removeModel(location.repo, location.commit);
    }
    await this.rows.deleteAll(id);
    return true;
  }

  /**
   * On start-up: resume downloads a previous process left unfinished (their partial files are kept). `entryOf`
   * finds a model in the catalogue, built-in or added by repo id.
   */
  async resumeInterrupted(entryOf: (id: string) => Promise<ManifestEntry | undefined>): Promise<string[]> {
    const resumed: string[] = [];
    for (const row of await this.rows.unfinished()) {
      const entry = await entryOf(row.modelId);
      const dtype = DownloadDtypeSchema.safeParse(row.dtype);
      if (!entry || !dtype.success) continue;
      await this.start(entry, row.requestedById, dtype.data);
      resumed.push(dtype.data === '*' ? entry.id : `${entry.id} (${dtype.data})`);
    }
    return resumed;
  }

  /** Who started the model's download of `dtype`, when recorded. */
  requester(id: string, dtype: DownloadDtype): Promise<string | null> {
    return this.rows.requester({ modelId: id, dtype });
  }

  private activeOf(id: string, dtype?: DownloadDtype): ActiveDownload[] {
    return [...this.active.values()].filter(
      (a) => a.key.modelId === id && (dtype === undefined || a.key.dtype === dtype),
    );
  }

  /** Stops every download for shutdown, keeping partial files so the next start resumes them. */
  async close(): Promise<void> {
    this.closing.abort(SHUTDOWN);
    const all = [...this.active.values()];
    for (const active of all) active.controller.abort(SHUTDOWN);
    await Promise.all(all.map((active) => active.done));
  }

  /** A verified cached file for the `/models` route: by commit (immutable) or by branch (latest ready). */
  async cachedFile(repo: string, revision: string, file: string) {
    const row = await this.rows.readyFile(repo, revision, file);
    if (!row) return null;
    return {
      path: this.cache.filePath(repo, row.commit, file),
      size: row.size,
      sha256: row.sha256,
      immutable: row.immutable,
    };
  }

  private async run(entry: ManifestEntry, active: ActiveDownload): Promise<void> {
    const { key, status, controller } = active;
    const signal = controller.signal;
    const stopped = AbortSignal.any([signal, this.closing.signal]);
    let slot = false;
    try {
      await this.slots.acquire(signal);
      slot = true;
      status.phase = 'fetching';
      await this.rows.record(() => this.rows.fetching(key), stopped);
      const { commit, files } = await this.onePlanAtATime(entry.repo, () =>
        planDownload({ hub: this.hub, cache: this.cache, entry, dtype: key.dtype, signal }),
      );
      status.revision = commit;
      status.files = files;
      status.bytesTotal = files.reduce((sum, f) => sum + f.size, 0);
      status.bytesDone = files.reduce((sum, f) => sum + f.bytesDone, 0);
      await this.rows.record(() => this.rows.saveFiles(key, commit, status, files), stopped);
      await this.cache.checkDisk(entry.repo, commit, files);
      status.phase = 'downloading';
      await this.rows.record(() => this.rows.downloading(key), stopped);
      for (const file of files) {
        if (file.phase === 'ready') continue;
        await this.fetchShared(entry, commit, file, active);
        await this.rows.record(() => this.rows.saveProgress(key, status, file), stopped);
      }
      status.phase = 'ready';
      await this.rows.record(() => this.rows.finished(key, status.bytesDone), stopped);
      this.options.log.info(
        { model: entry.id, dtype: key.dtype, commit, bytes: status.bytesTotal },
        'model download ready',
      );
    } catch (caught) {
      const reason = signal.aborted ? signal.reason : caught;
      if (reason === SHUTDOWN) return; // phase stays as it was: the next start resumes
      await this.fail(entry, active, reason);
    } finally {
      if (slot) this.slots.release();
    }
  }

  /** Records how a download ended badly; bookkeeping of a failure must not fail in turn (the database may be what failed). */
  private async fail(entry: ManifestEntry, { key, status }: ActiveDownload, reason: unknown): Promise<void> {
    const error =
      reason instanceof DownloadError
        ? reason
        : reason instanceof FetchError
          ? new DownloadError(reason.code, reason.message)
          : new DownloadError('INTERNAL', 'Download failed unexpectedly', { cause: reason });
    if (error.code === 'INTERNAL') this.options.log.error({ err: reason, model: entry.id }, 'model download failed');
    else this.options.log.warn({ model: entry.id, code: error.code }, error.message);
    status.phase = error.code === 'CANCELLED' ? 'cancelled' : 'failed';
    status.error = { code: error.code, message: error.message };
    try {
      if (error.code === 'CANCELLED' && status.revision) {
        const revision = status.revision;
        // Only this download's parts while another dtype's download of the model may be writing its own.
        const sharing = [...this.active.values()].some(
          (other) => other.status !== status && other.status.repo === entry.repo && other.status.revision === revision,
        );
        await this.cache.removeParts(entry.repo, revision, sharing ? status.files.map((f) => f.path) : undefined);
      }
      await this.rows.record(() => this.rows.failed(key, status.phase, error), this.closing.signal);
    } catch (bookkeeping) {
      if (!this.closing.signal.aborted) {
        this.options.log.error({ err: bookkeeping, model: entry.id }, 'could not record the download failure');
      }
    }
  }

  /**
   * Plans of one repo run one after another: a second dtype's plan then finds config.json verified in the cache
   * instead of asking the Hub for it again.
   */
  private async onePlanAtATime<T>(repo: string, plan: () => Promise<T>): Promise<T> {
    const before = this.plans.get(repo) ?? Promise.resolve();
    const mine = before.then(plan, plan);
    const settled = mine.then(
      () => undefined,
      () => undefined,
    );
    this.plans.set(repo, settled);
    try {
      return await mine;
    } finally {
      if (this.plans.get(repo) === settled) this.plans.delete(repo);
    }
  }

  /**
   * Fetches a file unless another download (another dtype of the model) is fetching it: then waits for that one and
   * takes its verified copy. One writer per part file.
   */
  private async fetchShared(entry: ManifestEntry, commit: string, file: PlannedFile, active: ActiveDownload) {
    const fileKey = [entry.repo, commit, file.path].join('\0');
    const takeCached = async () => {
      const sha256 = await this.cache.verifyCached(entry.repo, commit, file);
      if (!sha256) return false;
      active.status.bytesDone += file.size - file.bytesDone;
      Object.assign(file, { bytesDone: file.size, sha256, phase: 'ready' });
      return true;
    };
    // Another download may have finished the file since this one was planned.
    if (!this.fileFetches.has(fileKey) && (await takeCached())) return;
    for (let other = this.fileFetches.get(fileKey); other; other = this.fileFetches.get(fileKey)) {
      await other.catch(() => undefined);
      active.controller.signal.throwIfAborted();
      if (await takeCached()) return;
    }
    const mine = this.fetchFile(entry, commit, file, active);
    this.fileFetches.set(fileKey, mine);
    try {
      await mine;
    } finally {
      if (this.fileFetches.get(fileKey) === mine) this.fileFetches.delete(fileKey);
    }
  }

  private async fetchFile(entry: ManifestEntry, commit: string, file: PlannedFile, active: ActiveDownload) {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.fetchFileOnce(entry, commit, file, active);
        return;
      } catch (error) {
        const code = error instanceof DownloadError || error instanceof FetchError ? error.code : null;
        // A 429 is waited out when the Hub asks for a short wait (docs/SECURITY.md); a long one fails, naming it.
        const wait = error instanceof DownloadError ? (error.retryAfterMs ?? 0) : 0;
        const retriable =
          code !== null && (RETRIABLE.has(code) || (code === 'RATE_LIMITED' && wait <= MAX_RETRY_AFTER_MS));
        if (active.controller.signal.aborted || !retriable || attempt >= MAX_ATTEMPTS) throw error;
        this.options.log.warn({ model: entry.id, file: file.path, attempt, code }, 'download interrupted; resuming');
        await new Promise((resolve) => setTimeout(resolve, Math.max(200 * 2 ** attempt, wait)));
      }
    }
  }

  private async fetchFileOnce(entry: ManifestEntry, commit: string, file: PlannedFile, active: ActiveDownload) {
    const { status, controller } = active;
    const partPath = this.cache.partPath(entry.repo, commit, file.path);
    await mkdir(path.dirname(partPath), { recursive: true });
    let offset = await this.cache.partSize(entry.repo, commit, file.path);
    if (offset > file.size) {
      await rm(partPath, { force: true });
      offset = 0;
    }
    let digest = new FileDigest(file);
    await hashExisting(partPath, offset, digest);

    file.phase = 'downloading';
    if (file.size === 0) await writeFile(partPath, '');
    if (offset < file.size) {
      const { body, resumed } = await this.hub.file(entry.repo, commit, file, offset, controller.signal);
      if (!resumed && offset > 0) {
        // A 200 to a Range request: the server sends the whole file, so start the file over.
        offset = 0;
        digest = new FileDigest(file);
      }
      status.bytesDone += offset - file.bytesDone;
      file.bytesDone = offset;
      await writePart({
        body,
        partPath,
        offset,
        file,
        digest,
        signal: controller.signal,
        stallTimeoutMs: this.options.stallTimeoutMs,
        onChunk: (bytes) => {
          status.bytesDone += bytes;
          status.speed = active.speed.add(bytes);
        },
        onCheckpoint: () => void this.rows.saveProgress(active.key, status, file).catch(() => {}),
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
    const finalPath = this.cache.filePath(entry.repo, commit, file.path);
    await mkdir(path.dirname(finalPath), { recursive: true });
    await rename(partPath, finalPath);
    file.sha256 = sha256;
    file.phase = 'ready';
  }
}
