// The verified model cache on disk: where a file of a repo at a commit lives (and its part file while it
// downloads), whether a model's files are all there, what disk a download still needs, and the re-check of a
// file already cached. Every path is inside the cache directory by construction (docs/SECURITY.md).
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DownloadError, type PlannedFile } from './download-types.ts';
import { FileDigest, hashExisting } from './file-digest.ts';

export class ModelCache {
  constructor(
    readonly root: string,
    /** Disk a download leaves free (DOWNLOAD_DISK_MARGIN_BYTES). */
    private readonly diskMarginBytes: number,
  ) {}

  /** Where a verified file of `repo` at `commit` lives. */
  filePath(repo: string, commit: string, file: string): string {
    return this.inside(path.join(this.root, repo, commit, file));
  }

  /** Where a file of `repo` at `commit` is written while it downloads. */
  partPath(repo: string, commit: string, file: string): string {
    return this.inside(path.join(this.root, '.partial', repo, commit, `${file}.part`));
  }

  /** Deletes the part files of `repo` at `commit`: those of `files`, or all of them. */
  async removeParts(repo: string, commit: string, files?: string[]): Promise<void> {
    if (!files) return rm(path.dirname(this.partPath(repo, commit, 'x')), { recursive: true, force: true });
    for (const file of files) await rm(this.partPath(repo, commit, file), { force: true });
  }

  /** Deletes every file of `repo` at `commit`, verified or partial. */
  async removeModel(repo: string, commit: string): Promise<void> {
    await rm(path.dirname(this.filePath(repo, commit, 'x')), { recursive: true, force: true });
    await this.removeParts(repo, commit);
  }

  /** True when every file is in the cache at its recorded size. */
  async hasAll(repo: string, commit: string, files: { path: string; size: number }[]): Promise<boolean> {
    if (files.length === 0) return false;
    for (const file of files) {
      const info = await stat(this.filePath(repo, commit, file.path)).catch(() => null);
      if (!info || info.size !== file.size) return false;
    }
    return true;
  }

  /**
   * A file already in the cache (an earlier run, or a cache kept across a database change) is only trusted after
   * its digest is checked again: its sha256 when it matches what the Hub announced; else the copy is deleted.
   */
  async verifyCached(repo: string, commit: string, file: PlannedFile): Promise<string | null> {
    const finalPath = this.filePath(repo, commit, file.path);
    if ((await stat(finalPath).catch(() => null))?.size !== file.size) return null;
    const digest = new FileDigest(file);
    await hashExisting(finalPath, file.size, digest);
    const sha256 = digest.verify();
    if (!sha256) await rm(finalPath, { force: true });
    return sha256;
  }

  /**
   * Keeps `bytes` as the cached copy of `file` when they match what the Hub announced (written aside, then renamed);
   * returns its sha256, or null (nothing kept) when they do not.
   */
  async keepVerified(repo: string, commit: string, file: PlannedFile, bytes: Buffer): Promise<string | null> {
    const digest = new FileDigest(file);
    digest.update(bytes);
    const sha256 = bytes.length === file.size ? digest.verify() : null;
    if (!sha256) return null;
    // A name of its own: two dtypes' downloads of one model may keep the same file at once.
    const partPath = `${this.partPath(repo, commit, file.path)}.${randomUUID()}`;
    await mkdir(path.dirname(partPath), { recursive: true });
    await writeFile(partPath, bytes);
    const finalPath = this.filePath(repo, commit, file.path);
    await mkdir(path.dirname(finalPath), { recursive: true });
    await rename(partPath, finalPath);
    return sha256;
  }

  /** Bytes of a part file already on disk (0 when there is none). */
  async partSize(repo: string, commit: string, file: string): Promise<number> {
    return (await stat(this.partPath(repo, commit, file)).catch(() => null))?.size ?? 0;
  }

  /** Refuses a download the disk cannot hold with the margin left over (DISK_FULL, before any byte is fetched). */
  async checkDisk(repo: string, commit: string, files: PlannedFile[]): Promise<void> {
    let needed = 0;
    for (const file of files) {
      if (file.phase === 'ready') continue;
      needed += file.size - Math.min(await this.partSize(repo, commit, file.path), file.size);
    }
    await mkdir(this.root, { recursive: true });
    const disk = await statfs(this.root);
    const free = disk.bavail * disk.bsize;
    if (free < needed + this.diskMarginBytes) {
      const mb = (n: number) => `${Math.ceil(n / 1048576)} MB`;
      throw new DownloadError(
        'DISK_FULL',
        `Needs ${mb(needed)} plus ${mb(this.diskMarginBytes)} spare; ${mb(free)} free`,
      );
    }
  }

  private inside(candidate: string): string {
    const root = path.resolve(this.root) + path.sep;
    const resolved = path.resolve(candidate);
    if (!resolved.startsWith(root)) throw new DownloadError('INTERNAL', 'Path escapes the model cache');
    return resolved;
  }
}
