// Fast tests of the downloader's pieces: no database, no app; the Hub is the fake Hub (a real HTTP server).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent, generatedContent } from '../../../scripts/fake-hub.ts';
import { planFiles } from './download-plan.ts';
import { DownloadError, type PlannedFile } from './download-types.ts';
import { FileDigest } from './file-digest.ts';
import { HubClient, type HubTreeEntry } from './hub-client.ts';
import { ModelCache } from './model-cache.ts';
import { writePart } from './part-writer.ts';
import { SlotQueue } from './slot-queue.ts';
import { SpeedMeter } from './speed-meter.ts';

const COMMIT = 'a'.repeat(40);
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const gitOid = (bytes: Buffer) => createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
const planned = (bytes: Buffer, over: Partial<PlannedFile> = {}): PlannedFile => ({
  path: 'onnx/model.onnx',
  size: bytes.length,
  sha256: sha256(bytes),
  gitOid: null,
  bytesDone: 0,
  phase: 'queued',
  ...over,
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-download-pieces-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('planFiles', () => {
  const tree: HubTreeEntry[] = [
    { type: 'file', path: 'config.json', size: 12, oid: 'c'.repeat(40) },
    { type: 'file', path: 'onnx/model.onnx', size: 134, oid: 'd'.repeat(40), lfs: { oid: 'e'.repeat(64), size: 5000 } },
    { type: 'directory', path: 'onnx', size: 0, oid: 'f'.repeat(40) },
  ];

  it('takes sizes and digests from the tree: the LFS sha256 and size for LFS files, the git blob id for small ones', () => {
    const files = planFiles('o/r', COMMIT, tree, [{ path: 'config.json' }, { path: 'onnx/model.onnx' }]);
    expect(files).toEqual([
      { path: 'config.json', size: 12, sha256: null, gitOid: 'c'.repeat(40), bytesDone: 0, phase: 'queued' },
      { path: 'onnx/model.onnx', size: 5000, sha256: 'e'.repeat(64), gitOid: null, bytesDone: 0, phase: 'queued' },
    ]);
  });

  it('refuses a file the tree lacks (a directory of that name is not a file), naming it and the commit', () => {
    expect(() => planFiles('o/r', COMMIT, tree, [{ path: 'onnx' }])).toThrow(/onnx is not in o\/r at aaaaaaaaaaaa/);
  });

  it("refuses an LFS file whose sha256 differs from the catalogue's pin", () => {
    const error = (() => {
      try {
        planFiles('o/r', COMMIT, tree, [{ path: 'onnx/model.onnx', sha256: '0'.repeat(64) }]);
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as DownloadError).code).toBe('HASH_MISMATCH');
  });
});

describe('FileDigest', () => {
  const bytes = Buffer.from('{"model_type":"llama"}');
  it('accepts bytes matching the sha256, or the git blob id when no sha256 is known, and refuses others', () => {
    const bySha = new FileDigest(planned(bytes));
    bySha.update(bytes);
    expect(bySha.verify()).toBe(sha256(bytes));
    const byOid = new FileDigest(planned(bytes, { sha256: null, gitOid: gitOid(bytes) }));
    byOid.update(bytes.subarray(0, 5));
    byOid.update(bytes.subarray(5));
    expect(byOid.verify()).toBe(sha256(bytes));
    const wrong = new FileDigest(planned(bytes, { sha256: null, gitOid: gitOid(bytes) }));
    wrong.update(Buffer.from('{"model_type":"gpt2"}'.slice(0, bytes.length)));
    expect(wrong.verify()).toBeNull();
  });
});

describe('ModelCache', () => {
  it('keeps every path inside the cache directory', () => {
    const cache = new ModelCache(path.join(dir, 'cache'), 0);
    expect(cache.filePath('o/r', COMMIT, 'onnx/model.onnx')).toBe(
      path.join(dir, 'cache', 'o/r', COMMIT, 'onnx/model.onnx'),
    );
    expect(cache.partPath('o/r', COMMIT, 'a.json')).toBe(
      path.join(dir, 'cache', '.partial', 'o/r', COMMIT, 'a.json.part'),
    );
    expect(() => cache.filePath('o/r', COMMIT, '../../../../etc/passwd')).toThrow(/escapes the model cache/);
  });

  it('trusts a cached file only when its digest matches, deleting a corrupt one', async () => {
    const cache = new ModelCache(path.join(dir, 'verify'), 0);
    const bytes = Buffer.from('weights');
    const file = cache.filePath('o/r', COMMIT, 'onnx/model.onnx');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, bytes);
    expect(await cache.verifyCached('o/r', COMMIT, planned(bytes))).toBe(sha256(bytes));
    expect(await cache.hasAll('o/r', COMMIT, [{ path: 'onnx/model.onnx', size: bytes.length }])).toBe(true);
    expect(await cache.hasAll('o/r', COMMIT, [{ path: 'onnx/model.onnx', size: bytes.length + 1 }])).toBe(false);
    await writeFile(file, 'WEIGHTS');
    expect(await cache.verifyCached('o/r', COMMIT, planned(bytes))).toBeNull();
    expect(await stat(file).catch(() => null)).toBeNull();
  });

  it('refuses a download the disk cannot hold with its margin, counting part files already there', async () => {
    const cache = new ModelCache(path.join(dir, 'disk'), Number.MAX_SAFE_INTEGER / 2);
    const error = await cache.checkDisk('o/r', COMMIT, [planned(Buffer.alloc(10))]).catch((caught: unknown) => caught);
    expect((error as DownloadError).code).toBe('DISK_FULL');
    await expect(
      new ModelCache(path.join(dir, 'disk'), 0).checkDisk('o/r', COMMIT, [planned(Buffer.alloc(10))]),
    ).resolves.toBeUndefined();
  });
});

describe('writePart', () => {
  const write = async (chunks: Buffer[], file: PlannedFile, offset = 0) => {
    const partPath = path.join(dir, `part-${Math.random().toString(36).slice(2)}`);
    if (offset > 0) await writeFile(partPath, chunks.shift() ?? Buffer.alloc(0));
    const digest = new FileDigest(file);
    let counted = 0;
    const result = await writePart({
      body: Readable.from(chunks),
      partPath,
      offset,
      file,
      digest,
      signal: new AbortController().signal,
      stallTimeoutMs: 10_000,
      onChunk: (bytes) => (counted += bytes),
      onCheckpoint: () => {},
    }).then(
      () => null,
      (error: unknown) => error as DownloadError,
    );
    return { result, partPath, counted, digest };
  };

  it('writes the body after the offset, counting each byte once', async () => {
    const bytes = Buffer.from('0123456789abcdef');
    const file = planned(bytes);
    const { result, partPath, counted } = await write(
      [bytes.subarray(0, 6), bytes.subarray(6, 11), bytes.subarray(11)],
      file,
      6,
    );
    expect(result).toBeNull();
    expect(await readFile(partPath)).toEqual(bytes);
    expect(counted).toBe(10);
    expect(file.bytesDone).toBe(10);
  });

  it('refuses more bytes than announced and deletes the part', async () => {
    const { result, partPath } = await write([Buffer.alloc(8), Buffer.alloc(8)], planned(Buffer.alloc(12)));
    expect(result?.code).toBe('SIZE_MISMATCH');
    expect(await stat(partPath).catch(() => null)).toBeNull();
  });

  it('keeps what arrived when the body ends short, for the resume', async () => {
    const { result, partPath } = await write([Buffer.alloc(5, 1)], planned(Buffer.alloc(12)));
    expect(result?.code).toBe('HUB_UNREACHABLE');
    expect((await readFile(partPath)).length).toBe(5);
  });
});

describe('SlotQueue', () => {
  it('runs up to its limit, wakes waiters in order, and drops a waiter whose signal aborts', async () => {
    const slots = new SlotQueue(1);
    await slots.acquire(new AbortController().signal);
    const leaving = new AbortController();
    const order: string[] = [];
    const first = slots.acquire(leaving.signal).then(
      () => order.push('first'),
      () => order.push('first left'),
    );
    const second = slots.acquire(new AbortController().signal).then(() => order.push('second'));
    leaving.abort(new Error('gone'));
    await first;
    slots.release();
    await second;
    expect(order).toEqual(['first left', 'second']);
    expect(slots.busy).toBe(1);
  });
});

describe('SpeedMeter', () => {
  it('reports bytes per second over the last few seconds, recomputed per quarter second', () => {
    let now = 0;
    const meter = new SpeedMeter(() => now);
    meter.add(1000);
    now = 1000;
    expect(meter.add(1000)).toBe(2000);
    now = 10_000;
    expect(meter.add(500)).toBe(1000); // older buckets fell out; at least half a second counted
  });
});

describe('HubClient', () => {
  const hub = new FakeHub();
  let client: HubClient;
  let commit: string;
  const weights = generatedContent(200_000, 5);
  beforeAll(async () => {
    await hub.start();
    commit = (await hub.addRepo('o/r', { 'config.json': bufferContent('{}'), 'onnx/model.onnx': weights })).commit;
    client = new HubClient({ origin: hub.origin, maxRedirects: 3, timeoutMs: 5000 });
  });
  afterAll(() => hub.stop());

  it('resolves a branch to its commit and follows the pages of the tree', async () => {
    const signal = new AbortController().signal;
    expect(await client.commit('o/r', 'main', signal)).toBe(commit);
    hub.treePageSize = 1;
    expect((await client.tree('o/r', commit, signal)).map((f) => f.path).sort()).toEqual([
      'config.json',
      'onnx/model.onnx',
    ]);
    hub.reset();
  });

  it('fetches a file from an offset through the CDN redirect, with the Range honoured', async () => {
    const { body, resumed } = await client.file(
      'o/r',
      commit,
      { path: 'onnx/model.onnx', size: weights.size },
      100,
      new AbortController().signal,
    );
    let bytes = 0;
    for await (const chunk of body) bytes += (chunk as Buffer).length;
    expect(resumed).toBe(true);
    expect(bytes).toBe(weights.size - 100);
  });

  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => null,
      (caught: unknown) => {
        expect(caught).toBeInstanceOf(DownloadError);
        const error = caught as DownloadError;
        return { code: error.code, message: error.message, retryAfterMs: error.retryAfterMs };
      },
    );
  const signal = () => new AbortController().signal;

  it('says which of repo, revision or file the Hub does not have', async () => {
    expect(await refusal(client.commit('o/missing', 'main', signal()))).toMatchObject({
      code: 'NOT_FOUND',
      message: 'The Hub has no repo o/missing (or it is private: set HF_TOKEN)',
    });
    expect(await refusal(client.commit('o/r', 'v9', signal()))).toMatchObject({
      code: 'NOT_FOUND',
      message: 'o/r has no revision v9',
    });
    expect(await refusal(client.file('o/r', commit, { path: 'onnx/nope.onnx', size: 1 }, 0, signal()))).toMatchObject({
      code: 'NOT_FOUND',
      message: `onnx/nope.onnx is not in o/r at ${commit.slice(0, 12)}`,
    });
  });

  it('tells a gated repo without a token (401) from a token not granted access (403), and lets a granted one in', async () => {
    await hub.addRepo('o/gated', { 'config.json': bufferContent('{}') });
    hub.gate('o/gated', ['granted-token']);
    expect(await refusal(client.commit('o/gated', 'main', signal()))).toMatchObject({
      code: 'GATED',
      message: expect.stringMatching(/o\/gated is gated: accept .* as HF_TOKEN/),
    });
    const stranger = new HubClient({ origin: hub.origin, token: 'other-token', maxRedirects: 3, timeoutMs: 5000 });
    expect(await refusal(stranger.commit('o/gated', 'main', signal()))).toMatchObject({
      code: 'GATED',
      message: expect.stringMatching(/has not been granted access/),
    });
    const granted = new HubClient({ origin: hub.origin, token: 'granted-token', maxRedirects: 3, timeoutMs: 5000 });
    expect(await granted.commit('o/gated', 'main', signal())).toMatch(/^[0-9a-f]{40}$/);
    expect(hub.requests.filter((r) => r.path.includes('o/gated')).length).toBe(3);
  });

  it('says RATE_LIMITED with the wait the Hub asked for in Retry-After', async () => {
    hub.rateLimit(42);
    expect(await refusal(client.commit('o/r', 'main', signal()))).toEqual({
      code: 'RATE_LIMITED',
      message: 'The Hub is rate-limiting this server; try again in 42 s',
      retryAfterMs: 42_000,
    });
    expect(await client.commit('o/r', 'main', signal())).toBe(commit);
  });
});
