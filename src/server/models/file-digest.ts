// A file's digests computed while its bytes stream past, checked against what the Hub announced for it.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { PlannedFile } from './download-types.ts';

/** A file's sha256, plus its git blob id when that is what the Hub gave for it (small, non-LFS files). */
export class FileDigest {
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
    const matches = this.expected.sha256
      ? sha256 === this.expected.sha256
      : this.git?.digest('hex') === this.expected.gitOid;
    return matches ? sha256 : null;
  }
}

/** Feeds the first `length` bytes of `file` into `digest` (a part file being resumed, a cached file re-checked). */
export async function hashExisting(file: string, length: number, digest: FileDigest): Promise<void> {
  if (length <= 0) return;
  for await (const chunk of createReadStream(file, { start: 0, end: length - 1 })) digest.update(chunk as Buffer);
}
