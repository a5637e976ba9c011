// Server-side model downloads from the Hub into a verified cache (docs/SECURITY.md): one upstream fetch
// per model however many ask, a cap on concurrent downloads, a free-disk check, sizes enforced and sha256 (or
// the git blob id, for small non-LFS files) computed while streaming, an atomic rename only after the digest
// matches, and resumption with Range after a restart. State lives in the database; progress in memory.
// This is the orchestrator: the Hub (hub-client.ts), the disk (model-cache.ts), the rows (download-repository.ts),
// what to fetch (download-plan.ts), one file's fetch with its retries (file-fetcher.ts) and its bytes
// (part-writer.ts) are each their own module. What is left, about 300 lines, stays one class: it is the lifecycle
// of the downloads under way, one map (`active`) that start, run, fail, status, settled, cancel, remove and close
// all read or write, so pieces split out of it would each need that map and the modules above handed to them.
import type { FastifyBaseLogger } from 'fastify';
import { type DownloadDtype, DownloadDtypeSchema, type ManifestEntry } from '../../shared/schemas/models.ts';
import type { PrismaClient } from '../db/client.ts';
import type { Dependency } from '../dependencies/dependency.ts';
import { DownloadRepository } from './download-repository.ts';
import {
  DownloadError,
  type DownloadKey,
  type DownloadStatus,
  type PlannedFile,
  asDownloadError,
  keyString,
  queuedStatus,
} from './download-types.ts';
import { planDownload } from './download-plan.ts';
import { type FetchProgress, FileFetcher } from './file-fetcher.ts';
import { HubClient } from './hub-client.ts';
import { ModelCache } from './model-cache.ts';
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

const SHUTDOWN = 'shutdown';

export class ModelDownloader {
  private readonly active = new Map<string, ActiveDownload>();
  private readonly starting = new Map<string, Promise<DownloadStatus>>();
  /** The last plan of each repo under way (see onePlanAtATime). */
  private readonly plans = new Map<string, Promise<void>>();
  private readonly slots: SlotQueue;
  /** Aborted at shutdown: state writes waiting for the database give up (the next start resumes from what was written). */
  private readonly closing = new AbortController();
  private readonly hub: HubClient;
  private readonly cache: ModelCache;
  private readonly rows: DownloadRepository;
  private readonly files: FileFetcher;

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
    this.files = new FileFetcher({
      hub: this.hub,
      cache: this.cache,
      log: options.log,
      stallTimeoutMs: options.stallTimeoutMs,
    });
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
    const status = queuedStatus(entry, key);
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
        await this.files.fetch({ modelId: entry.id, repo: entry.repo, commit, file }, this.progressOf(active, file));
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
    const error = asDownloadError(reason);
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

  /** How one file's fetch moves its download's counters and speed, and writes its progress now and then. */
  private progressOf({ key, status, controller, speed }: ActiveDownload, file: PlannedFile): FetchProgress {
    return {
      signal: controller.signal,
      moved: (bytes, streamed) => {
        status.bytesDone += bytes;
        if (streamed) status.speed = speed.add(bytes);
      },
      checkpoint: () => void this.rows.saveProgress(key, status, file).catch(() => {}),
    };
  }
}
