// The headless peer's copy of a model from the server's proxy, against a real HTTP server answering in the proxy's
// shape: a file lands only when its bytes match the digest the server sends, a file already held is not asked for
// again, a bad path is refused before any request, and a refusal names the URL and status.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fetchModelFiles } from './model-files.ts';

const FILES: Record<string, string> = { 'config.json': '{"a":1}', 'onnx/model.onnx': 'graph bytes' };
const sha = (text: string) => createHash('sha256').update(text).digest('hex');
let lie = false;
let asked: string[] = [];
let server: Server;
let origin: string;
let dir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    asked.push(req.url ?? '');
    const file = /^\/models\/o\/m\/resolve\/c0ffee\/(.+)$/.exec(req.url ?? '')?.[1];
    const body = file === undefined ? undefined : FILES[file];
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"NOT_CACHED"}');
      return;
    }
    res.writeHead(200, { 'x-content-sha256': lie ? sha('other bytes') : sha(body) }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(async () => {
  lie = false;
  asked = [];
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-model-files-'));
});

const request = (files: string[]) => ({ server: origin, repo: 'o/m', revision: 'c0ffee', files, cacheDir: dir });

describe('fetchModelFiles', () => {
  it('copies each file under models/REPO/REVISION, and does not ask again for a file it holds', async () => {
    const model = await fetchModelFiles(request(Object.keys(FILES)));
    expect(model).toBe(path.join(dir, 'models', 'o', 'm', 'c0ffee'));
    for (const [file, body] of Object.entries(FILES)) expect(await readFile(path.join(model, file), 'utf8')).toBe(body);
    expect(asked).toHaveLength(2);
    await fetchModelFiles(request(Object.keys(FILES)));
    expect(asked).toHaveLength(2);
  });

  it('keeps nothing of a file whose bytes do not match the digest the server sent', async () => {
    lie = true;
    await expect(fetchModelFiles(request(['onnx/model.onnx']))).rejects.toThrow(
      /arrived with sha256 [0-9a-f]{64}, not the [0-9a-f]{64} the server holds/,
    );
    expect(await readdir(path.join(dir, 'models', 'o', 'm', 'c0ffee', 'onnx'))).toEqual([]);
  });

  it('names the URL and the status of a file the server does not give', async () => {
    await expect(fetchModelFiles(request(['missing.json']))).rejects.toThrow(
      /did not give http:\/\/127\.0\.0\.1:\d+\/models\/o\/m\/resolve\/c0ffee\/missing\.json \(HTTP 404: .*NOT_CACHED/,
    );
  });

  it('refuses a path out of the model directory, and a bad repository, before asking anything', async () => {
    await expect(fetchModelFiles(request(['../../escape.json']))).rejects.toThrow(/File paths cannot contain/);
    await expect(fetchModelFiles({ ...request(['config.json']), repo: '../o' })).rejects.toThrow();
    expect(asked).toEqual([]);
  });
});
