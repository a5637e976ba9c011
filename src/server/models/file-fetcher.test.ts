// Fast tests of one file's fetch (file-fetcher.ts): no database, no app; the Hub is the fake Hub (a real HTTP server).
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, generatedContent } from '../../../scripts/fake-hub.ts';
import { DownloadError, type PlannedFile } from './download-types.ts';
import { type FetchProgress, FileFetcher, MAX_ATTEMPTS, retryWait } from './file-fetcher.ts';
import { HubClient } from './hub-client.ts';
import { MAX_RETRY_AFTER_MS } from './hub-errors.ts';
import { ModelCache } from './model-cache.ts';
import { FetchError } from './safe-fetch.ts';

describe('retryWait', () => {
  it('resumes a dropped or stalled connection with a growing wait, up to the last attempt', () => {
    const dropped = new DownloadError('HUB_UNREACHABLE', 'closed');
    expect(retryWait(dropped, 1)).toBe(400);
    expect(retryWait(new FetchError('STALLED', 'no data'), 2)).toBe(800);
    expect(retryWait(dropped, MAX_ATTEMPTS)).toBeNull();
  });

  it('waits out a short 429 for as long as the Hub asked, and fails on a long one', () => {
    expect(retryWait(new DownloadError('RATE_LIMITED', 'slow down', { retryAfterMs: 5000 }), 1)).toBe(5000);
    const long = new DownloadError('RATE_LIMITED', 'slow down', { retryAfterMs: MAX_RETRY_AFTER_MS + 1 });
    expect(retryWait(long, 1)).toBeNull();
  });

  it('does not retry what a resume cannot fix', () => {
    expect(retryWait(new DownloadError('HASH_MISMATCH', 'corrupt'), 1)).toBeNull();
    expect(retryWait(new DownloadError('DISK_FULL', 'full'), 1)).toBeNull();
    expect(retryWait(new Error('anything else'), 1)).toBeNull();
  });
});

describe('FileFetcher', () => {
  const hub = new FakeHub();
  const weights = generatedContent(300_000, 7);
  let dir: string;
  let commit: string;
  let sha256: string;
  let fetcher: FileFetcher;
  let cache: ModelCache;
  const warnings: unknown[] = [];
  const log = { warn: (fields: unknown) => warnings.push(fields) } as unknown as FastifyBaseLogger;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mesh-file-fetcher-'));
    await hub.start();
    const added = await hub.addRepo('o/r', { 'onnx/model.onnx': weights });
    commit = added.commit;
    sha256 = added.files[0]?.sha256 ?? '';
    cache = new ModelCache(path.join(dir, 'cache'), 0);
    const client = new HubClient({ origin: hub.origin, maxRedirects: 3, timeoutMs: 5000 });
    fetcher = new FileFetcher({ hub: client, cache, log, stallTimeoutMs: 5000 });
  });
  afterEach(async () => {
    hub.reset();
    warnings.length = 0;
    await cache.removeModel('o/r', commit);
  });
  afterAll(async () => {
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const planned = (): PlannedFile => ({
    path: 'onnx/model.onnx',
    size: weights.size,
    sha256,
    gitOid: null,
    bytesDone: 0,
    phase: 'queued',
  });
  const progress = (signal = new AbortController().signal) => {
    const seen = { moved: 0, streamed: 0 };
    const report: FetchProgress = {
      signal,
      moved: (bytes, streamed) => {
        seen.moved += bytes;
        if (streamed) seen.streamed += bytes;
      },
      checkpoint: () => {},
    };
    return { seen, report };
  };
  const target = (file: PlannedFile) => ({ modelId: 'm', repo: 'o/r', commit, file });
  const fileGets = () => hub.requests.filter((r) => r.path.startsWith('/cdn/'));

  it('streams the file into the cache, verified, and counts every byte once', async () => {
    const file = planned();
    const { seen, report } = progress();
    await fetcher.fetch(target(file), report);
    expect(file).toMatchObject({ phase: 'ready', bytesDone: weights.size, sha256 });
    expect(seen).toEqual({ moved: weights.size, streamed: weights.size });
    expect((await stat(cache.filePath('o/r', commit, file.path))).size).toBe(weights.size);
    expect(await cache.partSize('o/r', commit, file.path)).toBe(0);
  });

  it('resumes a dropped connection with a Range from the bytes it kept', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'drop', atByte: 100_000 });
    const file = planned();
    const { seen, report } = progress();
    await fetcher.fetch(target(file), report);
    expect(file.phase).toBe('ready');
    expect(seen.moved).toBe(weights.size);
    expect(warnings).toEqual([expect.objectContaining({ model: 'm', attempt: 1, code: 'HUB_UNREACHABLE' })]);
    const ranges = fileGets().map((r) => r.range);
    expect(ranges[0]).toBeUndefined();
    expect(ranges.at(-1)).toMatch(/^bytes=\d+-$/);
    expect(Number(/bytes=(\d+)-/.exec(ranges.at(-1) ?? '')?.[1])).toBeGreaterThan(0);
  });

  it('fetches a file two downloads need at once only once; the second takes the verified copy', async () => {
    const first = planned();
    const second = planned();
    const a = progress();
    const b = progress();
    await Promise.all([fetcher.fetch(target(first), a.report), fetcher.fetch(target(second), b.report)]);
    expect(fileGets()).toHaveLength(1);
    expect(first.phase).toBe('ready');
    expect(second).toMatchObject({ phase: 'ready', bytesDone: weights.size, sha256 });
    expect(b.seen).toEqual({ moved: weights.size, streamed: 0 });
  });

  it('deletes a copy that does not match its sha256 and fails without retrying', async () => {
    hub.injectFault('onnx/model.onnx', { kind: 'flip', atByte: 10 });
    const file = planned();
    const error = await fetcher.fetch(target(file), progress().report).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'HASH_MISMATCH' });
    expect(fileGets()).toHaveLength(1);
    expect(await readFile(cache.partPath('o/r', commit, file.path)).catch(() => null)).toBeNull();
    expect(await stat(cache.filePath('o/r', commit, file.path)).catch(() => null)).toBeNull();
  });
});
