// The Hub's HTTP API as the download proxy uses it: a revision resolved to a commit, a commit's file tree (paged),
// and a file's bytes from an offset. Every request goes through safeFetch (docs/SECURITY.md: SSRF guard, redirect
// cap, the token sent only to the Hub's own origin); answers are checked with zod before use.
import { z } from 'zod';
import { CommitShaSchema } from '../../shared/schemas/models.ts';
import { DownloadError } from './download-types.ts';
import { type RefusedRequest, hubRefusal } from './hub-errors.ts';
import { type SafeResponse, readBody, safeFetch } from './safe-fetch.ts';

export interface HubClientOptions {
  origin: string;
  token?: string | undefined;
  maxRedirects: number;
  /** No response headers within this many ms: give up. */
  timeoutMs: number;
}

type Refused = Omit<RefusedRequest, 'withToken'>;

const TreeEntrySchema = z.object({
  type: z.string(),
  path: z.string(),
  size: z.number().int().nonnegative(),
  oid: z.string(),
  lfs: z.object({ oid: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).optional(),
});
export type HubTreeEntry = z.infer<typeof TreeEntrySchema>;
const TreeSchema = z.array(TreeEntrySchema);
const RevisionInfoSchema = z.object({ sha: CommitShaSchema });
/** The Hub's model info: the commit, and the license as the model card's front matter (cardData) and tags give it. */
const ModelInfoSchema = z.object({
  sha: CommitShaSchema,
  cardData: z
    .object({
      license: z.union([z.string().max(64), z.array(z.string().max(64)).max(8)]).optional(),
      license_name: z.string().max(64).optional(),
    })
    .loose()
    .nullish(),
  tags: z.array(z.string().max(256)).max(1000).optional(),
});
export interface HubModelInfo {
  commit: string;
  /** The model card's license (`license_name` for `other`), else a `license:` tag; null when neither names one. */
  license: string | null;
}

/** The Hub pages file lists by the thousand; a repo with more pages than this is not a model this server fetches. */
const MAX_TREE_PAGES = 100;
/** An API answer larger than this is not one the proxy needs. */
const MAX_JSON_BYTES = 8 * 1024 * 1024;

export function encodePath(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

export class HubClient {
  constructor(private readonly options: HubClientOptions) {}

  get origin(): string {
    return this.options.origin;
  }

  /** The commit `revision` (a branch, tag or commit) of `repo` points at. */
  async commit(repo: string, revision: string, signal: AbortSignal): Promise<string> {
    const answer = await this.json(`/api/models/${repo}/revision/${revision}`, { repo, revision }, signal);
    const info = RevisionInfoSchema.safeParse(answer);
    if (!info.success) throw new DownloadError('HUB_ERROR', `The Hub gave no commit for ${repo}@${revision}`);
    return info.data.sha;
  }

  /** The commit `revision` points at, and the license its model card names. */
  async info(repo: string, revision: string, signal: AbortSignal): Promise<HubModelInfo> {
    const answer = await this.json(`/api/models/${repo}/revision/${revision}`, { repo, revision }, signal);
    const info = ModelInfoSchema.safeParse(answer);
    if (!info.success) throw new DownloadError('HUB_ERROR', `The Hub gave no commit for ${repo}@${revision}`);
    const card = info.data.cardData;
    const cardLicense = [card?.license ?? []].flat()[0];
    const tagLicense = info.data.tags?.find((tag) => tag.startsWith('license:'))?.slice('license:'.length);
    let license = cardLicense ?? tagLicense ?? null;
    if (license === 'other' && card?.license_name) license = card.license_name;
    return { commit: info.data.sha, license: license?.trim().slice(0, 64) || null };
  }

  /** Every file of a commit: the Hub pages long file lists (`Link: <...>; rel="next"`). */
  async tree(repo: string, commit: string, signal: AbortSignal): Promise<HubTreeEntry[]> {
    const files: HubTreeEntry[] = [];
    let url: string | null = `${this.options.origin}/api/models/${repo}/tree/${commit}?recursive=true`;
    for (let page = 0; url; page++) {
      if (page === MAX_TREE_PAGES) {
        throw new DownloadError('HUB_ERROR', `${repo} lists more than ${MAX_TREE_PAGES} pages of files`);
      }
      const { json, next } = await this.jsonPage(url, { repo, revision: commit }, signal);
      const parsed = TreeSchema.safeParse(json);
      if (!parsed.success) throw new DownloadError('HUB_ERROR', `The Hub sent an unexpected file list for ${repo}`);
      files.push(...parsed.data);
      url = next;
    }
    return files;
  }

  /**
   * The bytes of `file` from `offset`, checked against the size its tree gave: `resumed` says the Hub honoured the
   * Range (a 200 to a Range request sends the whole file, which the caller then starts over).
   */
  async file(
    repo: string,
    commit: string,
    file: { path: string; size: number },
    offset: number,
    signal: AbortSignal,
  ): Promise<{ body: SafeResponse['body']; resumed: boolean }> {
    const url = `${this.options.origin}/${repo}/resolve/${commit}/${encodePath(file.path)}`;
    const response = await this.get(url, signal, offset > 0 ? { range: `bytes=${offset}-` } : {});
    const resumed = response.status === 206 && !!response.headers['content-range']?.startsWith(`bytes ${offset}-`);
    if (response.status !== 200 && !resumed) {
      response.body.destroy();
      throw this.refusal(response, { repo, revision: commit, file: file.path });
    }
    const linked = response.hops.find((h) => h['x-linked-size'])?.['x-linked-size'];
    if (linked !== undefined && Number(linked) !== file.size) {
      response.body.destroy();
      throw new DownloadError(
        'SIZE_MISMATCH',
        `${file.path}: the Hub announces ${linked} bytes, its tree ${file.size}`,
      );
    }
    return { body: response.body, resumed };
  }

  /** A small text file of the repo (config.json); refused when over MAX_JSON_BYTES. */
  async repoText(repo: string, commit: string, file: { path: string; size: number }, signal: AbortSignal) {
    if (file.size > MAX_JSON_BYTES) {
      throw new DownloadError('HUB_ERROR', `${file.path} is ${file.size} bytes; more than a config file should be`);
    }
    const { body } = await this.file(repo, commit, file, 0, signal);
    return readBody(body, MAX_JSON_BYTES);
  }

  /** A small JSON file of the repo (config.json), parsed; refused when over MAX_JSON_BYTES or not JSON. */
  async repoJson(repo: string, commit: string, file: { path: string; size: number }, signal: AbortSignal) {
    const text = await this.repoText(repo, commit, file, signal);
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      if (error instanceof SyntaxError)
        throw new DownloadError('HUB_ERROR', `${file.path} of ${repo} is not valid JSON`);
      throw error;
    }
  }

  /** A JSON answer of the Hub's API at `path` (under the Hub's origin), about `about` (for a refusal's words). */
  async json(path: string, about: Refused, signal: AbortSignal): Promise<unknown> {
    return (await this.jsonPage(`${this.options.origin}${path}`, about, signal)).json;
  }

  private refusal(response: { status: number; headers: SafeResponse['headers'] }, about: Refused): DownloadError {
    return hubRefusal(response.status, response.headers, { ...about, withToken: !!this.options.token });
  }

  private get(url: string, signal: AbortSignal, headers: Record<string, string> = {}) {
    return safeFetch(url, {
      trustedOrigin: this.options.origin,
      authorization: this.options.token ? `Bearer ${this.options.token}` : undefined,
      maxRedirects: this.options.maxRedirects,
      timeoutMs: this.options.timeoutMs,
      headers,
      signal,
    });
  }

  /** One page of a Hub API answer, with the URL of the next page when the Hub's `Link` header names one. */
  private async jsonPage(
    url: string,
    about: Refused,
    signal: AbortSignal,
  ): Promise<{ json: unknown; next: string | null }> {
    const response = await this.get(url, signal, { accept: 'application/json' });
    const text = await readBody(response.body, MAX_JSON_BYTES);
    const where = new URL(url).pathname;
    if (response.status !== 200) throw this.refusal(response, about);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new DownloadError('HUB_ERROR', `The Hub sent malformed JSON for ${where}`);
    }
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(response.headers.link ?? ''))?.[1];
    const next = link ? new URL(link, url) : null;
    // The next page is asked of the Hub itself, never of wherever a header points.
    if (next && next.origin !== this.options.origin) {
      throw new DownloadError('HUB_ERROR', `The Hub's next page points elsewhere (${next.origin})`);
    }
    return { json, next: next?.toString() ?? null };
  }
}
