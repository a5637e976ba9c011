// Downloads as rows (ModelDownload, ModelDownloadFile): every query the download proxy makes, and the retry of a
// state write while the database is down (the download needs only the Hub and the disk, so it goes on).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type DownloadErrorCode,
  type DownloadPhase,
  type ManifestEntry,
  isCommitSha,
} from '../../shared/schemas/models.ts';
import type { PrismaClient } from '../db/client.ts';
import { type Dependency, unavailability } from '../dependencies/dependency.ts';
import type { DownloadError, DownloadKey, DownloadStatus, PlannedFile } from './download-types.ts';

/** Between two tries of a state write that failed for want of the database (it may be back by the probe, not yet for the pool). */
const RECORD_RETRY_MS = 250;
const MAX_ERROR_MESSAGE = 1024;
const UNFINISHED = ['QUEUED', 'FETCHING', 'DOWNLOADING', 'VERIFYING'] as const;

const where = (key: DownloadKey) => ({ modelId_dtype: { modelId: key.modelId, dtype: key.dtype } });

export const toDbPhase = (phase: DownloadPhase) => phase.toUpperCase() as Uppercase<DownloadPhase>;
const fromDbPhase = (phase: string) => phase.toLowerCase() as DownloadPhase;

export class DownloadRepository {
  constructor(
    private readonly db: PrismaClient,
    /** The database's availability: `record` waits for it. */
    private readonly database: Pick<Dependency, 'whenUp'>,
  ) {}

  /**
   * A write of a download's state. While the database is down it waits for it and writes then. Gives up when
   * `signal` aborts (cancel, shutdown: the next start resumes from the last state written).
   */
  async record<T>(write: () => Promise<T>, signal: AbortSignal): Promise<T> {
    for (;;) {
      try {
        return await write();
      } catch (error) {
        if (!unavailability(error)) throw error;
        await this.database.whenUp(signal);
        await sleep(RECORD_RETRY_MS, undefined, { signal });
      }
    }
  }

  /** The model's download when it finished, with its files' recorded sizes; null otherwise. */
  async ready(
    key: DownloadKey,
  ): Promise<{ repo: string; revision: string; files: { path: string; size: number }[] } | null> {
    const row = await this.db.modelDownload.findUnique({
      where: where(key),
      select: { phase: true, repo: true, revision: true, files: { select: { path: true, size: true } } },
    });
    if (row?.phase !== 'READY') return null;
    return {
      repo: row.repo,
      revision: row.revision,
      files: row.files.map((f) => ({ path: f.path, size: Number(f.size) })),
    };
  }

  /** Queues a download of `entry` (a new row, or the old one reset). */
  async queue(entry: ManifestEntry, key: DownloadKey, requestedById: string | null): Promise<void> {
    await this.db.modelDownload.upsert({
      where: where(key),
      create: { ...key, repo: entry.repo, revision: entry.revision, phase: 'QUEUED', requestedById },
      update: { phase: 'QUEUED', errorCode: null, errorMessage: null, finishedAt: null },
    });
  }

  async fetching(key: DownloadKey): Promise<void> {
    await this.db.modelDownload.update({ where: where(key), data: { phase: 'FETCHING', startedAt: new Date() } });
  }

  async downloading(key: DownloadKey): Promise<void> {
    await this.db.modelDownload.update({ where: where(key), data: { phase: 'DOWNLOADING' } });
  }

  async finished(key: DownloadKey, bytesDone: number): Promise<void> {
    await this.db.modelDownload.update({
      where: where(key),
      data: {
        phase: 'READY',
        bytesDone: BigInt(bytesDone),
        finishedAt: new Date(),
        errorCode: null,
        errorMessage: null,
      },
    });
  }

  async failed(key: DownloadKey, phase: DownloadPhase, error: DownloadError): Promise<void> {
    await this.db.modelDownload.updateMany({
      where: { modelId: key.modelId, dtype: key.dtype },
      data: {
        phase: toDbPhase(phase),
        errorCode: error.code,
        errorMessage: error.message.slice(0, MAX_ERROR_MESSAGE),
        finishedAt: new Date(),
      },
    });
  }

  /** The pinned commit and the planned files, replacing the files of an earlier plan. */
  async saveFiles(key: DownloadKey, commit: string, status: DownloadStatus, files: PlannedFile[]): Promise<void> {
    await this.db.$transaction(async (tx) => {
      const download = await tx.modelDownload.update({
        where: where(key),
        data: { revision: commit, bytesTotal: BigInt(status.bytesTotal), bytesDone: BigInt(status.bytesDone) },
        select: { id: true },
      });
      await tx.modelDownloadFile.deleteMany({
        where: { downloadId: download.id, path: { notIn: files.map((f) => f.path) } },
      });
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

  async saveProgress(key: DownloadKey, status: DownloadStatus, file: PlannedFile): Promise<void> {
    await this.db.modelDownload.update({
      where: where(key),
      data: {
        bytesDone: BigInt(status.bytesDone),
        files: {
          updateMany: {
            where: { path: file.path },
            data: {
              bytesDone: BigInt(file.bytesDone),
              phase: toDbPhase(file.phase),
              ...(file.phase === 'ready' ? { sha256: file.sha256 } : {}),
            },
          },
        },
      },
    });
  }

  /** The last recorded state of a download (no speed: that lives only in memory). */
  async status(key: DownloadKey): Promise<DownloadStatus | null> {
    const row = await this.db.modelDownload.findUnique({
      where: where(key),
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
      id: key.modelId,
      dtype: key.dtype,
      repo: row.repo,
      revision: isCommitSha(row.revision) ? row.revision : null,
      phase: fromDbPhase(row.phase),
      bytesDone: Number(row.bytesDone),
      bytesTotal: Number(row.bytesTotal),
      speed: 0,
      files: row.files.map((f) => ({
        path: f.path,
        size: Number(f.size),
        bytesDone: Number(f.bytesDone),
        phase: fromDbPhase(f.phase),
      })),
      error: row.errorCode ? { code: row.errorCode as DownloadErrorCode, message: row.errorMessage ?? '' } : null,
    };
  }

  /** Where each download of a model (one per dtype) keeps its files: the commit, once pinned. */
  async locations(id: string): Promise<{ dtype: string; repo: string; commit: string | null }[]> {
    const rows = await this.db.modelDownload.findMany({
      where: { modelId: id },
      select: { dtype: true, repo: true, revision: true },
    });
    return rows.map((row) => ({
      dtype: row.dtype,
      repo: row.repo,
      commit: isCommitSha(row.revision) ? row.revision : null,
    }));
  }

  /** Deletes every download record of a model, all its dtypes. */
  async deleteAll(id: string): Promise<void> {
    await this.db.modelDownload.deleteMany({ where: { modelId: id } });
  }

  /** Downloads a previous process left unfinished. */
  async unfinished(): Promise<{ modelId: string; dtype: string; requestedById: string | null }[]> {
    return this.db.modelDownload.findMany({
      where: { phase: { in: [...UNFINISHED] } },
      select: { modelId: true, dtype: true, requestedById: true },
    });
  }

  /** Who started a model's download of `dtype`, if anyone is recorded. */
  async requester(key: DownloadKey): Promise<string | null> {
    const row = await this.db.modelDownload.findUnique({ where: where(key), select: { requestedById: true } });
    return row?.requestedById ?? null;
  }

  /** A verified file of `repo`: at `revision` when it is a commit, else of its latest ready download. */
  async readyFile(repo: string, revision: string, file: string) {
    const isCommit = isCommitSha(revision);
    const row = await this.db.modelDownloadFile.findFirst({
      where: { path: file, phase: 'READY', download: { repo, phase: 'READY', ...(isCommit ? { revision } : {}) } },
      select: { size: true, sha256: true, download: { select: { revision: true } } },
      orderBy: { updatedAt: 'desc' },
    });
    if (!row?.sha256) return null;
    return { commit: row.download.revision, size: Number(row.size), sha256: row.sha256, immutable: isCommit };
  }
}
