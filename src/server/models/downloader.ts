// Server-side model downloads from the Hub into a verified cache (docs/SECURITY.md): one upstream fetch
// per model however many ask, a cap on concurrent downloads, a free-disk check, sizes enforced and sha256 (or
// the git blob id, for small non-LFS files) computed while streaming, an atomic rename only after the digest
// matches, and resumption with Range after a restart. State lives in the database; progress in memory.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { z } from 'zod';
import type { DownloadErrorCode, DownloadPhase, ManifestEntry } from '../../shared/schemas/models.ts';
import type { PrismaClient } from '../db/client.ts';
import { type Dependency, unavailability } from '../dependencies/dependency.ts';
import { FetchError, readBody, safeFetch } from './safe-fetch.ts';

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

interface PlannedFile extends FileStatus {
  sha256: string | null;
  gitOid: string | null;
}

interface ActiveDownload {
  status: DownloadStatus;
  controller: AbortController;
  done: Promise<void>;
  samples: [number, number][];
}

const TreeSchema = z.array(
  z.object({
    type: z.string(),
    path: z.string(),
    size: z.number().int().nonnegative(),
    oid: z.string(),
    lfs: z.object({ oid: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).optional(),
  }),
);
const RevisionInfoSchema = z.object({ sha: z.string().regex(/^[0-9a-f]{40}$/) });
const RETRIABLE: DownloadErrorCode[] = ['HUB_UNREACHABLE', 'STALLED'];
const MAX_ATTEMPTS = 4;
/** The Hub pages file lists by the thousand; a repo with more pages than this is not a model this server fetches. */
const MAX_TREE_PAGES = 100;
const PROGRESS_WRITE_MS = 1000;
const SHUTDOWN = 'shutdown';
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Between two tries of a state write that failed for want of the database (it may be back by the probe, not yet for the pool). */
const RECORD_RETRY_MS = 250;

const toDbPhase = (phase: DownloadPhase) => phase.toUpperCase() as Uppercase<DownloadPhase>;
const fromDbPhase = (phase: string) => phase.toLowerCase() as DownloadPhase;

function encodePath(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

export class ModelDownloader {
  private readonly active = new Map<string, ActiveDownload>();
  private readonly starting = new Map<string, Promise<DownloadStatus>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Aborted at shutdown: state writes waiting for the database give up (the next start resumes from what was written). */
  private readonly closing = new AbortController();

  constructor(private readonly options: DownloaderOptions) {}

  /** Where a verified file of `repo` at `commit` lives; inside the cache directory by construction. */
  filePath(repo: string, commit: string, file: string): string {
    return this.inside(path.join(this.options.cacheDir, repo, commit, file));
  }

  private partPath(repo: string, commit: string, file: string): string {
    return this.inside(path.join(this.options.cacheDir, '.partial', repo, commit, `${file}.part`));
  }

  private inside(candidate: string): string {
    const root = path.resolve(this.options.cacheDir) + path.sep;
    const resolved = path.resolve(candidate);
    if (!resolved.startsWith(root)) throw new DownloadError('INTERNAL', 'Path escapes the model cache');
    return resolved;
  }

  /** Starts the download of every file of `entry`, or joins the one in progress. */
  start(entry: ManifestEntry, requestedById: string | null = null): Promise<DownloadStatus> {
    // Registered before the first await, so callers arriving together share one start (one upstream fetch).
    let starting = this.starting.get(entry.id);
    if (!starting) {
      starting = this.startOnce(entry, requestedById).finally(() => this.starting.delete(entry.id));
      this.starting.set(entry.id, starting);
    }
    return starting;
  }

  private async startOnce(entry: ManifestEntry, requestedById: string | null): Promise<DownloadStatus> {
    const current = this.active.get(entry.id);
    if (current) return current.status;
    const existing = await this.options.db.modelDownload.findUnique({ where: { modelId: entry.id }, select: { phase: true } });
    if (existing?.phase === 'READY' && (await this.isComplete(entry.id))) return (await this.status(entry.id)) as DownloadStatus;
    const status: DownloadStatus = {
      id: entry.id,
      repo: entry.repo,
      revision: null,
      phase: 'queued',
      bytesDone: 0,
      bytesTotal: 0,
      speed: 0,
      files: [],
      error: null,
    };
    await this.options.db.modelDownload.upsert({
      where: { modelId: entry.id },
      create: { modelId: entry.id, repo: entry.repo, revision: entry.revision, phase: 'QUEUED', requestedById },
      update: { phase: 'QUEUED', errorCode: null, errorMessage: null, finishedAt: null },
    });
    const controller = new AbortController();
    const active: ActiveDownload = { status, controller, samples: [], done: Promise.resolve() };
    this.active.set(entry.id, active);
    active.done = this.run(entry, active)
      .catch((error: unknown) => this.options.log.error({ err: error, model: entry.id }, 'model download bookkeeping failed'))
      .finally(() => this.active.delete(entry.id));
    return status;
  }

  /** Resolves when the download of `id` (if running) has ended, however it ended. */
  async settled(id: string): Promise<void> {
    await this.active.get(id)?.done;
  }

  async status(id: string): Promise<DownloadStatus | null> {
    const active = this.active.get(id);
    if (active) return { ...active.status, files: active.status.files.map((f) => ({ ...f })) };
    const row = await this.options.db.modelDownload.findUnique({
      where: { modelId: id },
      select: {
        repo: true,
        revision: true,
        phase: true,
        bytesDone: true,
        bytesTotal: true,
        errorCode: true,
        errorMessage: true,
        files: { select: { path: true, size: true, bytesDone: true, phase: true }, orderBy: { path: 'asc' } },
      },
    });
    if (!row) return null;
    return {
      id,
      repo: row.repo,
      revision: /^[0-9a-f]{40}$/.test(row.revision) ? row.revision : null,
      phase: fromDbPhase(row.phase),
      bytesDone: Number(row.bytesDone),
      bytesTotal: Number(row.bytesTotal),
      speed: 0,
      files: row.files.map((f) => ({ path: f.path, size: Number(f.size), bytesDone: Number(f.bytesDone), phase: fromDbPhase(f.phase) })),
      error: row.errorCode ? { code: row.errorCode as DownloadErrorCode, message: row.errorMessage ?? '' } : null,
    };
  }

  /** Stops a download and deletes its partial files. */
  async cancel(id: string): Promise<boolean> {
    const active = this.active.get(id);
    if (!active) return false;
    active.controller.abort(new DownloadError('CANCELLED', 'Download cancelled'));
    await active.done;
    return true;
  }

  /** Deletes a model's cached files and its record. */
  async remove(id: string): Promise<boolean> {
    await this.cancel(id);
    const row = await this.options.db.modelDownload.findUnique({ where: { modelId: id }, select: { repo: true, revision: true } });
    if (!row) return false;
    if (/^[0-9a-f]{40}$/.test(row.revision)) {
      await rm(path.dirname(this.filePath(row.repo, row.revision, 'x')), { recursive: true, force: true });
      await rm(path.dirname(this.partPath(row.repo, row.revision, 'x')), { recursive: true, force: true });
    }
    await this.options.db.modelDownload.delete({ where: { modelId: id } });
    return true;
  }

  /** On start-up: resume downloads a previous process left unfinished (their partial files are kept). */
  async resumeInterrupted(manifest: ManifestEntry[]): Promise<string[]> {
    const rows = await this.options.db.modelDownload.findMany({
      where: { phase: { in: ['QUEUED', 'FETCHING', 'DOWNLOADING', 'VERIFYING'] } },
      select: { modelId: true, requestedById: true },
    });
    const resumed: string[] = [];
    for (const row of rows) {
      const entry = manifest.find((m) => m.id === row.modelId);
      if (!entry) continue;
      await this.start(entry, row.requestedById);
      resumed.push(entry.id);
    }
    return resumed;
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
    const isCommit = /^[0-9a-f]{40}$/.test(revision);
    const row = await this.options.db.modelDownloadFile.findFirst({
      where: { path: file, phase: 'READY', download: { repo, phase: 'READY', ...(isCommit ? { revision } : {}) } },
      select: { size: true, sha256: true, download: { select: { revision: true } } },
      orderBy: { updatedAt: 'desc' },
    });
    if (!row?.sha256) return null;
    return { path: this.filePath(repo, row.download.revision, file), size: Number(row.size), sha256: row.sha256, immutable: isCommit };
  }

  private async isComplete(id: string): Promise<boolean> {
    const row = await this.options.db.modelDownload.findUnique({
      where: { modelId: id },
      select: { repo: true, revision: true, files: { select: { path: true, size: true } } },
    });
    if (!row || row.files.length === 0) return false;
    for (const file of row.files) {
      const info = await stat(this.filePath(row.repo, row.revision, file.path)).catch(() => null);
      if (!info || info.size !== Number(file.size)) return false;
    }
    return true;
  }

  private async acquireSlot(signal: AbortSignal): Promise<void> {
    if (this.running < this.options.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal.removeEventListener('abort', onAbort);
        this.running++;
        resolve();
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(wake), 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(wake);
    });
  }

  private releaseSlot(): void {
    this.running--;
    this.waiting.shift()?.();
  }

  private async run(entry: ManifestEntry, active: ActiveDownload): Promise<void> {
    const { status, controller } = active;
    const signal = controller.signal;
    const db = this.options.db;
    const stopped = AbortSignal.any([signal, this.closing.signal]);
    let slot = false;
    try {
      await this.acquireSlot(signal);
      slot = true;
      status.phase = 'fetching';
      await this.record(() => db.modelDownload.update({ where: { modelId: entry.id }, data: { phase: 'FETCHING', startedAt: new Date() } }), stopped);
      const { commit, files } = await this.plan(entry, signal);
      status.revision = commit;
      status.files = files;
      status.bytesTotal = files.reduce((sum, f) => sum + f.size, 0);
      await this.record(() => this.saveFiles(entry.id, commit, status, files), stopped);
      await this.checkDisk(entry.repo, commit, files);
      status.phase = 'downloading';
      await this.record(() => db.modelDownload.update({ where: { modelId: entry.id }, data: { phase: 'DOWNLOADING' } }), stopped);
      for (const file of files) {
        if (file.phase === 'ready') continue;
        await this.fetchFile(entry, commit, file, active);
        await this.record(() => this.saveProgress(entry.id, status, file), stopped);
      }
      status.phase = 'ready';
      await this.record(
        () =>
          db.modelDownload.update({
            where: { modelId: entry.id },
            data: { phase: 'READY', bytesDone: BigInt(status.bytesDone), finishedAt: new Date(), errorCode: null, errorMessage: null },
          }),
        stopped,
      );
      this.options.log.info({ model: entry.id, commit, bytes: status.bytesTotal }, 'model download ready');
    } catch (caught) {
      const reason = signal.aborted ? signal.reason : caught;
      if (reason === SHUTDOWN) return; // phase stays as it was: the next start resumes
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
      // Bookkeeping of a failure must not fail in turn (the database may be what failed).
      try {
        if (error.code === 'CANCELLED' && status.revision) {
          await rm(path.dirname(this.partPath(entry.repo, status.revision, 'x')), { recursive: true, force: true });
        }
        await this.record(
          () =>
            db.modelDownload.updateMany({
              where: { modelId: entry.id },
              data: { phase: toDbPhase(status.phase), errorCode: error.code, errorMessage: error.message.slice(0, 1024), finishedAt: new Date() },
            }),
          this.closing.signal,
        );
      } catch (bookkeeping) {
        if (!this.closing.signal.aborted) this.options.log.error({ err: bookkeeping, model: entry.id }, 'could not record the download failure');
      }
    } finally {
      if (slot) this.releaseSlot();
    }
  }

  /**
   * A write of a download's state. While the database is down it waits for it and writes then: the download needs only
   * the Hub and the disk, so it goes on, and its state is recorded when the database is back. Gives up when `signal`
   * aborts (cancel, shutdown: the next start resumes from the last state written).
   */
  private async record<T>(write: () => Promise<T>, signal: AbortSignal): Promise<T> {
    for (;;) {
      try {
        return await write();
      } catch (error) {
        if (!unavailability(error)) throw error;
        await this.options.database.whenUp(signal);
        await sleep(RECORD_RETRY_MS, undefined, { signal });
      }
    }
  }

  private hubGet(url: string, signal: AbortSignal, headers: Record<string, string> = {}) {
    return safeFetch(url, {
      trustedOrigin: this.options.hubOrigin,
      authorization: this.options.token ? `Bearer ${this.options.token}` : undefined,
      maxRedirects: this.options.maxRedirects,
      timeoutMs: this.options.stallTimeoutMs,
      headers,
      signal,
    });
  }

  private async hubJson(url: string, signal: AbortSignal): Promise<unknown> {
    return (await this.hubJsonPage(url, signal)).json;
  }

  /** One page of a Hub API answer, with the URL of the next page when the Hub's `Link` header names one. */
  private async hubJsonPage(url: string, signal: AbortSignal): Promise<{ json: unknown; next: string | null }> {
    const response = await this.hubGet(url, signal, { accept: 'application/json' });
    const text = await readBody(response.body, 8 * 1024 * 1024);
    if (response.status === 401 || response.status === 404) {
      throw new DownloadError('NOT_FOUND', `The Hub has no ${new URL(url).pathname.replace(/^\/api\/models\//, '')} (or it needs HF_TOKEN)`);
    }
    if (response.status !== 200) throw new DownloadError('HUB_ERROR', `The Hub answered ${response.status} for ${new URL(url).pathname}`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new DownloadError('HUB_ERROR', `The Hub sent malformed JSON for ${new URL(url).pathname}`);
    }
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(response.headers.link ?? ''))?.[1];
    const next = link ? new URL(link, url) : null;
    // The next page is asked of the Hub itself, never of wherever a header points.
    if (next && next.origin !== this.options.hubOrigin) throw new DownloadError('HUB_ERROR', `The Hub's next page points elsewhere (${next.origin})`);
    return { json, next: next?.toString() ?? null };
  }

  /** Every file of a commit: the Hub pages long file lists (`Link: <...>; rel="next"`). */
  private async hubTree(repo: string, commit: string, signal: AbortSignal): Promise<z.infer<typeof TreeSchema>> {
    const files: z.infer<typeof TreeSchema> = [];
    let url: string | null = `${this.options.hubOrigin}/api/models/${repo}/tree/${commit}?recursive=true`;
    for (let page = 0; url; page++) {
      if (page === MAX_TREE_PAGES) throw new DownloadError('HUB_ERROR', `${repo} lists more than ${MAX_TREE_PAGES} pages of files`);
      const { json, next } = await this.hubJsonPage(url, signal);
      const parsed = TreeSchema.safeParse(json);
      if (!parsed.success) throw new DownloadError('HUB_ERROR', `The Hub sent an unexpected file list for ${repo}`);
      files.push(...parsed.data);
      url = next;
    }
    return files;
  }

  /** Resolves the revision to a commit and every file to its size and digest, from the Hub's tree. */
  private async plan(entry: ManifestEntry, signal: AbortSignal): Promise<{ commit: string; files: PlannedFile[] }> {
    const hub = this.options.hubOrigin;
    const info = RevisionInfoSchema.safeParse(await this.hubJson(`${hub}/api/models/${entry.repo}/revision/${entry.revision}`, signal));
    if (!info.success) throw new DownloadError('HUB_ERROR', `The Hub gave no commit for ${entry.repo}@${entry.revision}`);
    const commit = info.data.sha;
    const tree = await this.hubTree(entry.repo, commit, signal);
    const files = await Promise.all(
      entry.files.map(async (wanted): Promise<PlannedFile> => {
        const item = tree.find((t) => t.type === 'file' && t.path === wanted.path);
        if (!item) throw new DownloadError('NOT_FOUND', `${wanted.path} is not in ${entry.repo} at ${commit.slice(0, 12)}`);
        const sha256 = item.lfs?.oid ?? null;
        if (wanted.sha256 && sha256 && wanted.sha256 !== sha256) {
          throw new DownloadError('HASH_MISMATCH', `${wanted.path} on the Hub differs from the catalogue's pinned sha256`);
        }
        const size = item.lfs?.size ?? item.size;
        const planned: PlannedFile = { path: wanted.path, size, sha256: wanted.sha256 ?? sha256, gitOid: item.lfs ? null : item.oid, bytesDone: 0, phase: 'queued' };
        // A file already in the cache (an earlier run, or a cache kept across a database change) is only
        // trusted after its digest is checked again.
        const finalPath = this.filePath(entry.repo, commit, wanted.path);
        if ((await stat(finalPath).catch(() => null))?.size === size) {
          const digest = new FileDigest(planned);
          if (size > 0) await hashExisting(finalPath, size, digest);
          const actualSha = digest.verify();
          if (actualSha) return { ...planned, sha256: actualSha, bytesDone: size, phase: 'ready' };
          await rm(finalPath, { force: true });
        }
        return planned;
      }),
    );
    return { commit, files };
  }

  private async saveFiles(id: string, commit: string, status: DownloadStatus, files: PlannedFile[]) {
    status.bytesDone = files.reduce((sum, f) => sum + f.bytesDone, 0);
    await this.options.db.$transaction(async (tx) => {
      const download = await tx.modelDownload.update({
        where: { modelId: id },
        data: { revision: commit, bytesTotal: BigInt(status.bytesTotal), bytesDone: BigInt(status.bytesDone) },
        select: { id: true },
      });
      await tx.modelDownloadFile.deleteMany({ where: { downloadId: download.id, path: { notIn: files.map((f) => f.path) } } });
      for (const file of files) {
        const data = {
          size: BigInt(file.size),
          bytesDone: BigInt(file.bytesDone),
          phase: toDbPhase(file.phase),
          sha256: file.sha256,
        };
        await tx.modelDownloadFile.upsert({
          where: { downloadId_path: { downloadId: download.id, path: file.path } },
          create: { downloadId: download.id, path: file.path, ...data },
          update: data,
        });
      }
    });
  }

  private async saveProgress(id: string, status: DownloadStatus, file: PlannedFile) {
    await this.options.db.modelDownload.update({
      where: { modelId: id },
      data: {
        bytesDone: BigInt(status.bytesDone),
        files: {
          updateMany: {
            where: { path: file.path },
            data: { bytesDone: BigInt(file.bytesDone), phase: toDbPhase(file.phase), ...(file.phase === 'ready' ? { sha256: file.sha256 } : {}) },
          },
        },
      },
    });
  }

  private async checkDisk(repo: string, commit: string, files: PlannedFile[]) {
    let needed = 0;
    for (const file of files) {
      if (file.phase === 'ready') continue;
      const part = await stat(this.partPath(repo, commit, file.path)).catch(() => null);
      needed += file.size - Math.min(part?.size ?? 0, file.size);
    }
    await mkdir(this.options.cacheDir, { recursive: true });
    const disk = await statfs(this.options.cacheDir);
    const free = disk.bavail * disk.bsize;
    if (free < needed + this.options.diskMarginBytes) {
      const mb = (n: number) => `${Math.ceil(n / 1048576)} MB`;
      throw new DownloadError('DISK_FULL', `Needs ${mb(needed)} plus ${mb(this.options.diskMarginBytes)} spare; ${mb(free)} free`);
    }
  }

  private async fetchFile(entry: ManifestEntry, commit: string, file: PlannedFile, active: ActiveDownload) {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.fetchFileOnce(entry, commit, file, active);
        return;
      } catch (error) {
        const code = error instanceof DownloadError || error instanceof FetchError ? error.code : null;
        if (active.controller.signal.aborted || !code || !RETRIABLE.includes(code) || attempt >= MAX_ATTEMPTS) throw error;
        this.options.log.warn({ model: entry.id, file: file.path, attempt, code }, 'download interrupted; resuming');
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
      }
    }
  }

  private async fetchFileOnce(entry: ManifestEntry, commit: string, file: PlannedFile, active: ActiveDownload) {
    const { status, controller } = active;
    const partPath = this.partPath(entry.repo, commit, file.path);
    await mkdir(path.dirname(partPath), { recursive: true });
    let offset = (await stat(partPath).catch(() => null))?.size ?? 0;
    if (offset > file.size) {
      await rm(partPath, { force: true });
      offset = 0;
    }
    let digest = new FileDigest(file);
    if (offset > 0) await hashExisting(partPath, offset, digest);

    file.phase = 'downloading';
    if (file.size === 0) await writeFile(partPath, '');
    if (offset < file.size) {
      const url = `${this.options.hubOrigin}/${entry.repo}/resolve/${commit}/${encodePath(file.path)}`;
      const response = await this.hubGet(url, controller.signal, offset > 0 ? { range: `bytes=${offset}-` } : {});
      const resumed = response.status === 206 && response.headers['content-range']?.startsWith(`bytes ${offset}-`);
      if (response.status !== 200 && !resumed) {
        response.body.destroy();
        if (response.status === 404) throw new DownloadError('NOT_FOUND', `${file.path} is not on the Hub`);
        if (response.status === 401 || response.status === 403) throw new DownloadError('HUB_ERROR', `The Hub refused ${file.path} (gated? set HF_TOKEN)`);
        if (response.status >= 500 || response.status === 429) throw new DownloadError('HUB_UNREACHABLE', `The Hub answered ${response.status}`);
        throw new DownloadError('HUB_ERROR', `The Hub answered ${response.status} for ${file.path}`);
      }
      const linked = response.hops.find((h) => h['x-linked-size'])?.['x-linked-size'];
      if (linked !== undefined && Number(linked) !== file.size) {
        response.body.destroy();
        throw new DownloadError('SIZE_MISMATCH', `${file.path}: the Hub announces ${linked} bytes, its tree ${file.size}`);
      }
      if (!resumed && offset > 0) {
        // A 200 to a Range request: the server sends the whole file, so start the file over.
        offset = 0;
        digest = new FileDigest(file);
      }
      await this.streamToPart(response.body, partPath, offset, file, status, active, digest);
    }

    file.phase = 'verifying';
    const sha256 = digest.verify();
    if (!sha256) {
      await rm(partPath, { force: true });
      throw new DownloadError('HASH_MISMATCH', `${file.path} does not match its ${file.sha256 ? 'sha256' : 'git blob id'}; the corrupt copy was deleted`);
    }
    const finalPath = this.filePath(entry.repo, commit, file.path);
    await mkdir(path.dirname(finalPath), { recursive: true });
    await rename(partPath, finalPath);
    file.sha256 = sha256;
    file.phase = 'ready';
  }

  private async streamToPart(
    body: AsyncIterable<Buffer> & { destroy(error?: Error): void },
    partPath: string,
    offset: number,
    file: PlannedFile,
    status: DownloadStatus,
    active: ActiveDownload,
    digest: FileDigest,
  ) {
    const cannotWrite = (error: unknown): never => {
      throw writeFailure(file, error);
    };
    const handle = await open(partPath, offset > 0 ? 'r+' : 'w').catch(cannotWrite);
    let written = offset;
    status.bytesDone += offset - file.bytesDone;
    file.bytesDone = offset;
    let lastWrite = Date.now();
    // One timer checking the time of the last chunk: re-arming a timer per chunk costs more than the chunk.
    let lastData = Date.now();
    const stallTimer = setInterval(
      () => {
        if (Date.now() - lastData >= this.options.stallTimeoutMs) {
          body.destroy(new DownloadError('STALLED', `No data for ${this.options.stallTimeoutMs} ms; will resume`));
        }
      },
      Math.min(1000, this.options.stallTimeoutMs / 4),
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
    active.controller.signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of body) {
        lastData = Date.now();
        if (written + pendingBytes + chunk.length > file.size) {
          body.destroy();
          await handle.close();
          await rm(partPath, { force: true });
          throw new DownloadError('SIZE_MISMATCH', `${file.path}: the Hub sent more than the ${file.size} bytes it announced`);
        }
        digest.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        file.bytesDone += chunk.length;
        status.bytesDone += chunk.length;
        this.sample(active, chunk.length);
        // Socket chunks are 16 to 64 KiB; one write per chunk spends more time in the thread pool than on disk.
        if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
        if (Date.now() - lastWrite > PROGRESS_WRITE_MS) {
          lastWrite = Date.now();
          void this.saveProgress(status.id, status, file).catch(() => {});
        }
      }
      await flush();
      if (written < file.size) throw new DownloadError('HUB_UNREACHABLE', `${file.path}: the connection closed at byte ${written} of ${file.size}`);
      await handle.sync().catch(cannotWrite);
    } catch (error) {
      // What arrived before a dropped connection is good data: keep it for the resume.
      if (!(error instanceof DownloadError && error.code === 'SIZE_MISMATCH')) await flush().catch(() => {});
      if (error instanceof DownloadError) throw error;
      if (active.controller.signal.aborted) throw active.controller.signal.reason;
      throw new DownloadError('HUB_UNREACHABLE', `${file.path}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearInterval(stallTimer);
      active.controller.signal.removeEventListener('abort', onAbort);
      await handle.close().catch(() => {});
    }
  }

  /** Speed over the last ~3 s, from per-quarter-second buckets (cheap on the per-chunk hot path). */
  private sample(active: ActiveDownload, bytes: number) {
    const bucket = Math.floor(Date.now() / 250);
    const last = active.samples[active.samples.length - 1];
    if (last && last[0] === bucket) last[1] += bytes;
    else {
      active.samples.push([bucket, bytes]);
      while ((active.samples[0]?.[0] ?? bucket) <= bucket - 12) active.samples.shift();
      const span = Math.max(0.5, (bucket - (active.samples[0]?.[0] ?? bucket)) / 4);
      active.status.speed = Math.round(active.samples.reduce((sum, [, n]) => sum + n, 0) / span);
    }
  }
}

/** A file's sha256, plus its git blob id when that is what the Hub gave for it (small, non-LFS files). */
class FileDigest {
  private readonly sha256 = createHash('sha256');
  private readonly git: Hash | null;

  constructor(private readonly expected: Pick<PlannedFile, 'size' | 'sha256' | 'gitOid'>) {
    this.git = expected.gitOid ? createHash('sha1').update(`blob ${expected.size}\0`) : null;
  }

  update(chunk: Buffer): void {
    this.sha256.update(chunk);
    this.git?.update(chunk);
  }

  /** The sha256 when the bytes match what the Hub announced (its sha256, else its git blob id); null if not. */
  verify(): string | null {
    const sha256 = this.sha256.digest('hex');
    const matches = this.expected.sha256 ? sha256 === this.expected.sha256 : this.git?.digest('hex') === this.expected.gitOid;
    return matches ? sha256 : null;
  }
}

/** A failure to write the cache, said plainly: a full disk is DISK_FULL (and not retried), anything else INTERNAL. */
function writeFailure(file: PlannedFile, error: unknown): DownloadError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new DownloadError('DISK_FULL', `The disk filled up while saving ${file.path}; free some space and download again`, { cause: error });
  }
  return new DownloadError('INTERNAL', `Could not save ${file.path}: ${(error as Error).message}`, { cause: error });
}

async function hashExisting(file: string, length: number, digest: FileDigest) {
  for await (const chunk of createReadStream(file, { start: 0, end: length - 1 })) digest.update(chunk as Buffer);
}
