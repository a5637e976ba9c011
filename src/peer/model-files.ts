// A model's files copied from the server's download proxy into the headless peer's cache directory, for what reads
// them from disk rather than through the engine: the splitter that cuts a stage peer's layers out of the whole graph
// (docs/pipeline.md, "Stages hosted by peers in a room"). Each file is checked against the digest the server sends
// (`x-content-sha256`, what its verified cache holds) and lands under its final name only when it matches.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { RepoFilePathSchema, RepoSchema, RevisionSchema } from '../shared/schemas/models.ts';

export interface ModelFilesRequest {
  /** The server's origin. */
  server: string;
  repo: string;
  revision: string;
  files: readonly string[];
  /** Kept under `<cacheDir>/models/<repo>/<revision>/`. */
  cacheDir: string;
  /** Headers for the server (the session cookie). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Copies each file the cache does not hold yet; returns the model's directory. */
export async function fetchModelFiles(request: ModelFilesRequest): Promise<string> {
  const repo = RepoSchema.parse(request.repo);
  const revision = RevisionSchema.parse(request.revision);
  const dir = path.resolve(request.cacheDir, 'models', repo, revision);
  for (const name of request.files) {
    const file = RepoFilePathSchema.parse(name);
    const target = path.resolve(dir, file);
    // The schema refuses `..` and absolute paths; this keeps the promise whatever it lets through.
    if (path.relative(dir, target).startsWith('..')) throw new Error(`Refusing the model file path ${file}`);
    const held = await access(target).then(
      () => true,
      () => false,
    );
    if (!held) await fetchOne(`${request.server}/models/${repo}/resolve/${revision}/${file}`, target, request);
  }
  return dir;
}

async function fetchOne(url: string, target: string, request: ModelFilesRequest): Promise<void> {
  const response = await fetch(url, {
    ...(request.headers ? { headers: request.headers } : {}),
    ...(request.signal ? { signal: request.signal } : {}),
  });
  if (!response.ok || !response.body) {
    const body = await response.text().catch(() => '');
    throw new Error(`The server did not give ${url} (HTTP ${response.status}${body ? `: ${body.slice(0, 200)}` : ''})`);
  }
  const expected = response.headers.get('x-content-sha256');
  await mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.part`;
  const hash = createHash('sha256');
  try {
    await pipeline(
      Readable.fromWeb(response.body as WebReadableStream),
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      }),
      createWriteStream(partial),
    );
    const digest = hash.digest('hex');
    if (expected && digest !== expected)
      throw new Error(`${url} arrived with sha256 ${digest}, not the ${expected} the server holds`);
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}
