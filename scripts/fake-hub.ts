// A fake Hugging Face Hub: a real HTTP server with the Hub's URL layout and headers, serving repos the
// project generates, with faults injected on demand. Used by the tests and the benchmarks; never by the app.
// Over 300 lines: one server speaking one protocol (its content generators live in fake-hub-content.ts).
//   /api/models/{repo}                         model info (sha, siblings; cardData and license tag from README.md's
//                                              front matter, as the Hub derives them)
//   /api/models/{repo}/revision/{rev}          same, at a revision
//   /api/models/{repo}/tree/{rev}?recursive=1  files with size, oid and lfs {oid, size}
//   /{repo}/resolve/{rev}/{file}               small files: 200 with ETag = git blob oid
//                                              LFS files: 302 to /cdn/{sha256} with X-Linked-Etag (sha256),
//                                              X-Linked-Size, X-Repo-Commit, like the real Hub's CDN redirect
//   /cdn/{sha256}                              the "CDN": bytes with Range support
// Refusals as the Hub words them: `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and
// `X-Error-Message`; a gated repo answers 401 without a token and 403 to a token not granted access; `rateLimit`
// answers 429 with `Retry-After`.
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Content, bufferContent, generatedContent } from './fake-hub-content.ts';

export { type Content, bufferContent, generatedContent } from './fake-hub-content.ts';

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
  | { kind: 'status'; status: number; headers?: Record<string, string> };

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
  /** The model card's front matter fields the Hub reports as `cardData` (only `license` and `license_name` here). */
  card: Record<string, string>;
  /** Gated: only these bearer tokens may read it (the Hub's "accept the conditions" granted to their accounts). */
  granted?: Set<string>;
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

async function text(content: Content): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of content.read(0, content.size)) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** `license` and `license_name` of a model card's YAML front matter (the Hub's cardData), read as plain lines. */
function frontMatter(card: string): Record<string, string> {
  const yaml = /^---\n([\s\S]*?)\n---/.exec(card)?.[1] ?? '';
  const fields: Record<string, string> = {};
  for (const line of yaml.split('\n')) {
    const match = /^(license|license_name):\s*(.+)$/.exec(line.trim());
    if (match?.[1] && match[2]) fields[match[1]] = match[2].trim();
  }
  return fields;
}

const LFS_PATTERN = /\.(onnx|onnx_data|bin|safetensors|gguf)$/;

export class FakeHub {
  readonly requests: HubRequest[] = [];
  private readonly repos = new Map<string, HubRepo>();
  private readonly faults = new Map<string, Fault[]>();
  private readonly limited: number[] = [];
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
    const readme = entries.find((f) => f.path === 'README.md');
    const card = readme ? frontMatter(await text(readme.content)) : {};
    this.repos.set(repo, { commit, files: new Map(entries.map((f) => [f.path, f])), card });
    return { commit, files: entries };
  }

  /** Gates `repo` as the Hub gates a model: readable only with one of `tokens` (accounts granted access). */
  gate(repo: string, tokens: string[]): void {
    const entry = this.repos.get(repo);
    if (!entry) throw new Error(`No repo ${repo}`);
    entry.granted = new Set(tokens);
  }

  /** Answers the next `times` requests (any path) with 429 and `Retry-After: seconds`, as the Hub's rate limit does. */
  rateLimit(seconds: number, times = 1): void {
    this.limited.push(...Array.from({ length: times }, () => seconds));
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
    this.limited.length = 0;
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
    const limited = this.limited.shift();
    if (limited !== undefined) {
      return this.refuse(res, 429, 'RateLimited', 'You have exceeded our hourly quotas for action: resolve', {
        'retry-after': String(limited),
      });
    }
    try {
      let match = /^\/api\/models\/([^/]+\/[^/]+)(?:\/revision\/([^/]+))?$/.exec(path);
      if (match) return this.modelInfo(req, res, match[1] ?? '', match[2] ?? 'main');
      match = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(path);
      if (match) return this.tree(req, res, match[1] ?? '', match[2] ?? '', url.searchParams.get('cursor'));
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

  /** An error as the Hub answers one: a JSON body and the same words in `X-Error-Message`. */
  private refuse(
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ) {
    this.json(res, status, { error: message }, { 'x-error-code': code, 'x-error-message': message, ...headers });
  }

  private repoOr404(req: IncomingMessage, res: ServerResponse, name: string, revision: string): HubRepo | undefined {
    const repo = this.repos.get(name);
    // The Hub answers 401 for a repo it does not have, so as not to tell private repos from missing ones.
    if (!repo) return void this.refuse(res, 401, 'RepoNotFound', 'Repository not found');
    if (repo.granted) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (!token) {
        return void this.refuse(
          res,
          401,
          'GatedRepo',
          `Access to model ${name} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        );
      }
      if (!repo.granted.has(token)) {
        return void this.refuse(
          res,
          403,
          'GatedRepo',
          `Access to model ${name} is restricted and you are not in the authorized list. Visit https://huggingface.co/${name} to ask for access.`,
        );
      }
    }
    if (!this.resolveRevision(repo, revision)) {
      return void this.refuse(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    }
    return repo;
  }

  private modelInfo(req: IncomingMessage, res: ServerResponse, name: string, revision: string) {
    const repo = this.repoOr404(req, res, name, revision);
    if (!repo) return;
    this.json(res, 200, {
      id: name,
      modelId: name,
      sha: repo.commit,
      ...(Object.keys(repo.card).length ? { cardData: repo.card } : {}),
      tags: repo.card.license ? [`license:${repo.card.license}`] : [],
      siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private tree(req: IncomingMessage, res: ServerResponse, name: string, revision: string, cursor: string | null) {
    const repo = this.repoOr404(req, res, name, revision);
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
    const repo = this.repoOr404(req, res, name, revision);
    if (!repo) return;
    const file = repo.files.get(filePath);
    if (!file) return this.refuse(res, 404, 'EntryNotFound', `${filePath} does not exist on "${revision}"`);
    const fault = this.takeFault(filePath, ['redirect', 'redirect-loop', 'status']);
    const common = { 'x-repo-commit': repo.commit };
    if (fault?.kind === 'status')
      return this.json(res, fault.status, { error: 'injected' }, { ...common, ...fault.headers });
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
