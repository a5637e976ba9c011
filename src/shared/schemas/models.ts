// The model catalogue and download contracts, shared by the server, the client and the worker.
import { z } from 'zod';

/** A catalogue id: lower-case slug. */
export const ModelIdSchema = z
  .string()
  .min(1)
  .max(96)
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'Model ids are lower-case letters, digits, ".", "_" and "-"');

/** `owner/name` as on the Hub; no dots-only segments, no slashes beyond the one separator. */
export const RepoSchema = z
  .string()
  .min(3)
  .max(96)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'Expected a repository as owner/name')
  .refine((repo) => !repo.split('/').some((part) => part.includes('..')), 'Repository names cannot contain ".."');

/** A full git commit id, as the Hub's revision API answers it: what pins a model's files. */
export const COMMIT_SHA = /^[0-9a-f]{40}$/;
export const CommitShaSchema = z.string().regex(COMMIT_SHA, 'Expected a 40-character commit sha');
export const isCommitSha = (value: string): boolean => COMMIT_SHA.test(value);

/** A git commit sha (pinned) or a branch name such as `main`. */
export const RevisionSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'Expected a commit sha or branch name')
  .refine((revision) => !revision.includes('..'), 'Revisions cannot contain ".."');

/** A relative path inside a repo: plain segments only (no `..`, `.`, empty, absolute, backslash or URL). */
export const RepoFilePathSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/, 'Expected a relative file path')
  .refine(
    (file) => !file.split('/').some((part) => part === '.' || part === '..'),
    'File paths cannot contain . or ..',
  );

export const DtypeSchema = z.enum(['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4']);
export type Dtype = z.infer<typeof DtypeSchema>;

export const ManifestFileSchema = z
  .object({
    path: RepoFilePathSchema,
    /** Bytes, when known ahead of the Hub's tree. */
    size: z.number().int().nonnegative().optional(),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
  })
  .strict();

export const ManifestEntrySchema = z
  .object({
    id: ModelIdSchema,
    name: z.string().min(1).max(96),
    description: z.string().max(500).default(''),
    repo: RepoSchema,
    revision: RevisionSchema,
    task: z.literal('text-generation'),
    dtype: z.object({ webgpu: DtypeSchema, wasm: DtypeSchema }).strict(),
    /**
     * The files to fetch. Empty (the default for Hub models): the files transformers.js loads for the entry's dtypes,
     * derived by the server from the repo's tree and config.json at the pinned commit; the catalogue then lists the
     * files of the server's download.
     */
    files: z.array(ManifestFileSchema).max(64).default([]),
    contextLength: z.number().int().positive().max(1_048_576),
    parameters: z.string().max(16).optional(),
    license: z.string().min(1).max(64),
    /** Ships with every install; served from the bundle, never downloaded. */
    bundled: z.boolean().default(false),
    /** Said plainly to people: a demo model that makes text-shaped output, not a real assistant. */
    demo: z.boolean().default(false),
  })
  .strict();
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

/** What a download fetches: one dtype's files (what one kind of device runs), or `*` every dtype the entry names. */
export const DownloadDtypeSchema = z.union([DtypeSchema, z.literal('*')]);
export type DownloadDtype = z.infer<typeof DownloadDtypeSchema>;

const CachedFileSchema = z.object({ path: RepoFilePathSchema, size: z.number().int().nonnegative() }).strict();

/** A finished server download of one dtype (or `*`): the commit it is pinned to and its files. */
export const CachedDownloadSchema = z
  .object({
    dtype: DownloadDtypeSchema,
    revision: RevisionSchema,
    files: z.array(CachedFileSchema).max(64),
    totalSize: z.number().int().nonnegative(),
  })
  .strict();
export type CachedDownload = z.infer<typeof CachedDownloadSchema>;

/** Bytes a device fetches for one dtype of a repo (its graph and external data, with config and tokenizer). */
export const DtypeSizeSchema = z.object({ dtype: DtypeSchema, bytes: z.number().int().nonnegative() }).strict();
export type DtypeSize = z.infer<typeof DtypeSizeSchema>;

/** One model as `manifest.list` answers it: the manifest entry and where this server holds it. */
export const CatalogueEntrySchema = ManifestEntrySchema.extend({
  totalSize: z.number().int().nonnegative().nullable(),
  /** The commit the server pinned the model to when it downloaded it. */
  cachedRevision: RevisionSchema.nullable(),
  serverStatus: z.string().max(32),
  /** The server's finished downloads of this model, one per dtype: a device uses the one of its own dtype. */
  downloads: z.array(CachedDownloadSchema).max(16).default([]),
  /** A model added by repo id (models.add): by this person, or by an operator for everyone. */
  addedBy: z.enum(['you', 'operator']).optional(),
  /** The dtypes the repo has and what each costs a device, when the server knows (models added by repo id). */
  sizes: z.array(DtypeSizeSchema).max(8).optional(),
}).strict();
export type CatalogueEntry = z.infer<typeof CatalogueEntrySchema>;

export const ManifestFileFormatSchema = z
  .object({
    /** `replace`: only these models; `extend` (default): add to (or override by id) the built-in catalogue. */
    mode: z.enum(['replace', 'extend']).default('extend'),
    models: z.array(ManifestEntrySchema).max(500),
  })
  .strict()
  .refine((file) => new Set(file.models.map((m) => m.id)).size === file.models.length, 'Model ids must be unique');

export const DownloadPhaseSchema = z.enum([
  'queued',
  'fetching',
  'downloading',
  'verifying',
  'ready',
  'failed',
  'cancelled',
]);
export type DownloadPhase = z.infer<typeof DownloadPhaseSchema>;

export const DownloadErrorCodeSchema = z.enum([
  'HUB_UNREACHABLE',
  'HUB_ERROR',
  'NOT_FOUND',
  /** A gated repo this server's HF_TOKEN may not read (none set, or its account not granted access). */
  'GATED',
  /** The Hub answered 429: the message says when to try again. */
  'RATE_LIMITED',
  'FORBIDDEN_REDIRECT',
  'TOO_MANY_REDIRECTS',
  'SIZE_MISMATCH',
  'HASH_MISMATCH',
  'DISK_FULL',
  'STALLED',
  'CANCELLED',
  'INTERNAL',
]);
export type DownloadErrorCode = z.infer<typeof DownloadErrorCodeSchema>;

export const ModelRefInputSchema = z.object({ id: ModelIdSchema }).strict();

/**
 * A download (or its status, or its cancel): of the dtype this device runs, named outright or by its backend (the
 * catalogue's dtype for it). Neither: every dtype the entry names, as before dtypes were fetched one by one.
 */
export const ModelDownloadInputSchema = z
  .object({
    id: ModelIdSchema,
    dtype: DtypeSchema.optional(),
    backend: z.enum(['webgpu', 'wasm']).optional(),
  })
  .strict();
export type ModelDownloadInput = z.infer<typeof ModelDownloadInputSchema>;

/** The longest text models.add takes: a repo id, or a Hub URL of one (with a revision and path after it). */
const MAX_REPO_INPUT = 300;

/**
 * A Hub repo as a person pastes it: `owner/name`, or `https://huggingface.co/owner/name[/tree|blob|resolve/<rev>/...]`.
 * Gives the repo and the revision the URL names, if any.
 */
export function parseRepoInput(input: string): { repo: string; revision: string | null } | null {
  const trimmed = input.trim();
  // A URL pasted without its scheme.
  const text = /^(www\.)?(huggingface\.co|hf\.co)\//i.test(trimmed) ? `https://${trimmed}` : trimmed;
  let path = text;
  if (/^https?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return null;
    }
    if (!/^(www\.)?(huggingface\.co|hf\.co)$/i.test(url.hostname)) return null;
    path = url.pathname.replace(/^\/+|\/+$/g, '');
    if (path.startsWith('models/')) path = path.slice('models/'.length);
  }
  const [owner, name, kind, revision] = path.split('/');
  const repo = RepoSchema.safeParse(`${owner ?? ''}/${name ?? ''}`);
  if (!repo.success) return null;
  if (path !== text && kind && ['tree', 'blob', 'resolve', 'commit'].includes(kind) && revision) {
    const rev = RevisionSchema.safeParse(decodeURIComponent(revision));
    return rev.success ? { repo: repo.data, revision: rev.data } : null;
  }
  // A bare id has exactly one slash; a URL may go on (/discussions, ...) but names no revision then.
  if (path === text && path.split('/').length !== 2) return null;
  return { repo: repo.data, revision: null };
}

export const ModelAddInputSchema = z
  .object({
    repo: z
      .string()
      .min(3)
      .max(MAX_REPO_INPUT)
      .refine((text) => parseRepoInput(text) !== null, 'Expected a Hub repo id (owner/name) or its huggingface.co URL'),
    revision: RevisionSchema.optional(),
    /** An operator's addition for every person of this server. */
    forEveryone: z.boolean().optional(),
  })
  .strict();
export type ModelAddInput = z.infer<typeof ModelAddInputSchema>;

/** Which check refused a model added by repo id (models.add), so the person knows what to change. */
export const ModelAddCheckSchema = z.enum([
  'input',
  'pattern',
  'limit',
  'duplicate',
  'repo',
  'access',
  'rate',
  'architecture',
  'tokenizer',
  'onnx',
  'license',
  'hub',
]);
export type ModelAddCheck = z.infer<typeof ModelAddCheckSchema>;

/** The identity of a model's exact weights: the commit pins every file's bytes and the dtype picks the weights file. */
export async function modelFingerprint(repo: string, revision: string, dtype: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest(
    'SHA-256',
    new TextEncoder().encode(`${repo}@${revision}:${dtype}`),
  );
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}
