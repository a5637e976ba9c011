// A fake Hugging Face Hub: a real HTTP server with the Hub's URL layout and headers, serving repos the
// project generates, with faults injected on demand. Used by the tests and the benchmarks; never by the app.
//   /api/models/{repo}                         model info (sha, siblings)
//   /api/models/{repo}/revision/{rev}          same, at a revision
//   /api/models/{repo}/tree/{rev}?recursive=1  files with size, oid and lfs {oid, size}
//   /{repo}/resolve/{rev}/{file}               small files: 200 with ETag = git blob oid
//                                              LFS files: 302 to /cdn/{sha256} with X-Linked-Etag (sha256),
//                                              X-Linked-Size, X-Repo-Commit, like the real Hub's CDN redirect
//   /cdn/{sha256}                              the "CDN": bytes with Range support
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** File content: bytes in memory, or a deterministic generated stream (for files too big to hold). */
export interface Content {
  size: number;
  /** Yields the bytes from `start` (inclusive) to `end` (exclusive). */
  read(start: number, end: number): AsyncIterable<Buffer> | Iterable<Buffer>;
}

export function bufferContent(bytes: Buffer | string): Content {
  const buffer = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return { size: buffer.length, read: (start, end) => [buffer.subarray(start, end)] };
}

/**
 * Deterministic pseudo-random bytes (xorshift) in 64 KiB blocks. Blocks repeat every 16 MiB and are made once,
 * so serving a large file costs the Hub no CPU: benchmarks then measure the client, not this generator.
 */
export function generatedContent(size: number, seed = 1): Content {
  const BLOCK = 64 * 1024;
  const POOL = 256;
  const pool = new Map<number, Buffer>();
  const block = (index: number) => {
    const slot = index % POOL;
    let cached = pool.get(slot);
    if (!cached) pool.set(slot, (cached = makeBlock(slot)));
    return cached;
  };
  const makeBlock = (index: number) => {
    const out = Buffer.allocUnsafe(BLOCK);
    let x = (seed * 2654435761 + index * 40503 + 1) >>> 0 || 1;
    for (let i = 0; i < BLOCK; i += 4) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out.writeUInt32LE(x, i);
    }
    return out;
  };
  return {
    size,
    *read(start, end) {
      for (let offset = start; offset < end;) {
        const index = Math.floor(offset / BLOCK);
        const from = offset - index * BLOCK;
        const to = Math.min(BLOCK, end - index * BLOCK);
        yield block(index).subarray(from, to);
        offset += to - from;
      }
    },
  };
}

export type Fault =
  /** Close the connection after N body bytes. */
  | { kind: 'drop'; atByte: number }
  /** Send N bytes more than the file has (no Content-Length, so only the size check can catch it). */
  | { kind: 'oversize'; extra: number }
  /** Flip the byte at this offset. */
  | { kind: 'flip'; atByte: number }
  /** Answer a Range request with 200 and the whole file. */
  | { kind: 'ignore-range' }
  /** Redirect the resolve request to this URL instead of the CDN. */
  | { kind: 'redirect'; location: string }
  /** Redirect forever. */
  | { kind: 'redirect-loop' }
  /** Stop sending after N body bytes, keeping the connection open. */
  | { kind: 'stall'; atByte: number }
  /** Pause after N body bytes until `until` resolves, then send the rest (a test decides when a download goes on). */
  | { kind: 'hold'; atByte: number; until: Promise<void> }
  | { kind: 'status'; status: number };

interface HubFile {
  path: string;
  content: Content;
  lfs: boolean;
  sha256: string;
  gitOid: string;
}

interface HubRepo {
  commit: string;
  files: Map<string, HubFile>;
}

/** Files per page of the Hub's tree API. */
const HUB_TREE_PAGE_SIZE = 1000;

export interface HubRequest {
  method: string;
  path: string;
  range: string | undefined;
}

async function digest(content: Content, algorithm: 'sha256' | 'sha1', prefix?: string): Promise<string> {
  const hash = createHash(algorithm);
  if (prefix) hash.update(prefix);
  for await (const chunk of content.read(0, content.size)) hash.update(chunk);
  return hash.digest('hex');
}

const LFS_PATTERN = /\.(onnx|onnx_data|bin|safetensors|gguf)$/;

export class FakeHub {
  readonly requests: HubRequest[] = [];
  private readonly repos = new Map<string, HubRepo>();
  private readonly faults = new Map<string, Fault[]>();
  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  private readonly sockets = new Set<Socket>();
  origin = '';
  /** Files per page of the tree API; a test lowers it to see the pages followed. */
  treePageSize = HUB_TREE_PAGE_SIZE;

  async start(port = 0): Promise<string> {
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.origin;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Adds a repo whose single revision `main` points at a commit derived from its content. */
  async addRepo(repo: string, files: Record<string, Content>): Promise<{ commit: string; files: HubFile[] }> {
    const entries: HubFile[] = [];
    for (const [path, content] of Object.entries(files)) {
      const lfs = LFS_PATTERN.test(path) || content.size >= 10 * 1024 * 1024;
      const sha256 = await digest(content, 'sha256');
      const gitOid = await digest(content, 'sha1', `blob ${content.size}\0`);
      entries.push({ path, content, lfs, sha256, gitOid });
    }
    const commit = createHash('sha1')
      .update(repo + entries.map((f) => `${f.path}:${f.sha256}`).join(','))
      .digest('hex');
    this.repos.set(repo, { commit, files: new Map(entries.map((f) => [f.path, f])) });
    return { commit, files: entries };
  }

  /** Queues a fault for the next request of `file` (its resolve request and its CDN request both count). */
  injectFault(file: string, fault: Fault, times = 1): void {
    const queue = this.faults.get(file) ?? [];
    for (let i = 0; i < times; i++) queue.push(fault);
    this.faults.set(file, queue);
  }

  /** Forgets queued faults, the request log and a lowered page size (between tests). */
  reset(): void {
    this.faults.clear();
    this.requests.length = 0;
    this.treePageSize = HUB_TREE_PAGE_SIZE;
  }

  private takeFault(file: string, kinds: Fault['kind'][]): Fault | undefined {
    const queue = this.faults.get(file);
    const index = queue?.findIndex((fault) => kinds.includes(fault.kind)) ?? -1;
    if (!queue || index < 0) return undefined;
    return queue.splice(index, 1)[0];
  }

  private resolveRevision(repo: HubRepo, revision: string): boolean {
    return revision === 'main' || revision === repo.commit;
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', this.origin);
    const path = decodeURIComponent(url.pathname);
    this.requests.push({ method: req.method ?? 'GET', path, range: req.headers.range });
    try {
      let match = /^\/api\/models\/([^/]+\/[^/]+)(?:\/revision\/([^/]+))?$/.exec(path);
      if (match) return this.modelInfo(res, match[1] ?? '', match[2] ?? 'main');
      match = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(path);
      if (match) return this.tree(res, match[1] ?? '', match[2] ?? '', url.searchParams.get('cursor'));
      match = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
      if (match) return this.resolve(req, res, match[1] ?? '', match[2] ?? '', match[3] ?? '');
      match = /^\/cdn\/([0-9a-f]{64})\/(.+)$/.exec(path);
      if (match) return await this.cdn(req, res, match[1] ?? '', match[2] ?? '');
      this.json(res, 404, { error: 'Not found' });
    } catch (error) {
      if (!res.headersSent) this.json(res, 500, { error: String(error) });
      else res.destroy();
    }
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  }

  private repoOr404(res: ServerResponse, name: string, revision: string): HubRepo | undefined {
    const repo = this.repos.get(name);
    if (!repo) return void this.json(res, 401, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
    if (!this.resolveRevision(repo, revision)) {
      return void this.json(res, 404, { error: `Invalid rev id: ${revision}` }, { 'x-error-code': 'RevisionNotFound' });
    }
    return repo;
  }

  private modelInfo(res: ServerResponse, name: string, revision: string) {
    const repo = this.repoOr404(res, name, revision);
    if (!repo) return;
    this.json(res, 200, {
      id: name,
      modelId: name,
      sha: repo.commit,
      siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private tree(res: ServerResponse, name: string, revision: string, cursor: string | null) {
    const repo = this.repoOr404(res, name, revision);
    if (!repo) return;
    // Paged as the Hub pages it: an opaque cursor, and a `Link` header to the next page while there is one.
    const all = [...repo.files.values()];
    const start = cursor ? Number(Buffer.from(cursor, 'base64url').toString()) : 0;
    const end = Math.min(all.length, start + this.treePageSize);
    const headers: Record<string, string> = {};
    if (end < all.length) {
      headers.link = `<${this.origin}/api/models/${name}/tree/${revision}?recursive=true&cursor=${Buffer.from(String(end)).toString('base64url')}>; rel="next"`;
    }
    this.json(
      res,
      200,
      all.slice(start, end).map((file) => ({
        type: 'file',
        oid: file.gitOid,
        size: file.content.size,
        path: file.path,
        ...(file.lfs ? { lfs: { oid: file.sha256, size: file.content.size, pointerSize: 134 } } : {}),
      })),
      headers,
    );
  }

  private resolve(req: IncomingMessage, res: ServerResponse, name: string, revision: string, filePath: string) {
    const repo = this.repoOr404(res, name, revision);
    if (!repo) return;
    const file = repo.files.get(filePath);
    if (!file) return this.json(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
    const fault = this.takeFault(filePath, ['redirect', 'redirect-loop', 'status']);
    const common = { 'x-repo-commit': repo.commit };
    if (fault?.kind === 'status') return this.json(res, fault.status, { error: 'injected' }, common);
    if (fault?.kind === 'redirect') return res.writeHead(302, { ...common, location: fault.location }).end();
    if (fault?.kind === 'redirect-loop') return res.writeHead(302, { ...common, location: req.url ?? '/' }).end();
    if (!file.lfs) return this.sendBytes(req, res, file, `"${file.gitOid}"`, common);
    res
      .writeHead(302, {
        ...common,
        etag: `"${file.sha256}"`,
        'x-linked-etag': `"${file.sha256}"`,
        'x-linked-size': String(file.content.size),
        location: `/cdn/${file.sha256}/${encodeURIComponent(filePath)}`,
      })
      .end();
  }

  private async cdn(req: IncomingMessage, res: ServerResponse, sha256: string, fileName: string) {
    const file = [...this.repos.values()].flatMap((repo) => [...repo.files.values()]).find((f) => f.sha256 === sha256);
    if (!file) return this.json(res, 404, { error: 'No such object' });
    await this.sendBytes(req, res, file, `"${sha256}"`, {}, fileName);
  }

  private async sendBytes(
    req: IncomingMessage,
    res: ServerResponse,
    file: HubFile,
    etag: string,
    extraHeaders: Record<string, string>,
    faultKey = file.path,
  ) {
    const fault = this.takeFault(faultKey, ['drop', 'oversize', 'flip', 'ignore-range', 'stall', 'hold']);
    const size = file.content.size;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size;
    let status = 200;
    if (range && fault?.kind !== 'ignore-range') {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]) + 1, size) : size;
      if (start >= size) return res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      status = 206;
    }
    const headers: Record<string, string> = {
      ...extraHeaders,
      etag,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end - 1}/${size}`;
    if (fault?.kind !== 'oversize') headers['content-length'] = String(end - start);
    res.writeHead(status, headers);
    let offset = start;
    let held = false;
    for await (const original of file.content.read(start, end)) {
      let chunk = original;
      if (fault?.kind === 'hold' && !held && offset + chunk.length > fault.atByte) {
        const before = chunk.subarray(0, Math.max(0, fault.atByte - offset));
        if (before.length) res.write(before);
        await fault.until;
        held = true;
        chunk = chunk.subarray(before.length);
        offset += before.length;
      }
      if (fault?.kind === 'flip' && fault.atByte >= offset && fault.atByte < offset + chunk.length) {
        chunk = Buffer.from(chunk);
        const at = fault.atByte - offset;
        chunk[at] = (chunk[at] ?? 0) ^ 0xff;
      }
      if ((fault?.kind === 'drop' || fault?.kind === 'stall') && offset + chunk.length > fault.atByte) {
        const keep = chunk.subarray(0, Math.max(0, fault.atByte - offset));
        if (keep.length) res.write(keep);
        if (fault.kind === 'drop') setTimeout(() => res.destroy(), 20);
        return; // a stall simply never sends the rest
      }
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
      offset += chunk.length;
    }
    if (fault?.kind === 'oversize') res.write(Buffer.alloc(fault.extra, 0x2a));
    res.end();
  }
}

// `tsx scripts/fake-hub.ts [port]`: serve a small generated repo for manual testing.
if (import.meta.url === `file://${process.argv[1]}`) {
  const hub = new FakeHub();
  await hub.addRepo('mesh/demo', {
    'config.json': bufferContent('{"model_type":"llama"}'),
    'onnx/model.onnx': generatedContent(4 * 1024 * 1024, 7),
  });
  console.warn(`fake hub at ${await hub.start(Number(process.argv[2] ?? 0))}`);
}
