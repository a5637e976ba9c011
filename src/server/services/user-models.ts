// Models added by repo id (models.add; README "Add a model by its repo id"): the caps, the Hub's checks
// (models/hub-check.ts), the UserModel rows, and which of them a person sees: their own, and those an operator
// added for everyone. Such a model is then a catalogue entry like a built-in one: it downloads, loads and is shared.
import { z } from 'zod';
import {
  type DtypeSize,
  DtypeSizeSchema,
  type ManifestEntry,
  ManifestEntrySchema,
  type ModelAddCheck,
  type ModelAddInput,
  parseRepoInput,
} from '../../shared/schemas/models.ts';
import type { PrismaClient } from '../db/client.ts';
import type { Prisma } from '../db/generated/client.ts';
import type { Env } from '../env.ts';
import { ModelCheckError, addedModelId, checkHubModel } from '../models/hub-check.ts';
import type { HubClient } from '../models/hub-client.ts';
import { ServiceError } from './errors.ts';

/** A refusal of models.add: which check failed, in words that say what to change. */
function refuse(check: ModelAddCheck, message: string, kind: ServiceError['kind'] = 'INVALID'): ServiceError {
  return new ServiceError(kind, message, check);
}

const SELECT = {
  modelId: true,
  addedById: true,
  forEveryone: true,
  repo: true,
  revision: true,
  name: true,
  license: true,
  dtypeWebgpu: true,
  dtypeWasm: true,
  contextLength: true,
  sizes: true,
} satisfies Prisma.UserModelSelect;
type Row = Prisma.UserModelGetPayload<{ select: typeof SELECT }>;

export interface AddedModel {
  entry: ManifestEntry;
  addedBy: 'you' | 'operator';
  forEveryone: boolean;
  sizes: DtypeSize[];
}

function toAdded(row: Row, viewerId: string | null): AddedModel {
  const entry = ManifestEntrySchema.parse({
    id: row.modelId,
    name: row.name,
    description: `Added from the Hub by repo id (${row.repo}${row.revision === 'main' ? '' : `@${row.revision}`})`,
    repo: row.repo,
    revision: row.revision,
    task: 'text-generation',
    dtype: { webgpu: row.dtypeWebgpu, wasm: row.dtypeWasm },
    contextLength: row.contextLength,
    license: row.license,
  });
  const sizes = z.array(DtypeSizeSchema).max(8).safeParse(row.sizes);
  return {
    entry,
    addedBy: row.addedById === viewerId ? 'you' : 'operator',
    forEveryone: row.forEveryone,
    sizes: sizes.success ? sizes.data : [],
  };
}

/** What `viewerId` sees (everyone's when null): their own additions, then an operator's for everyone, one per id. */
export async function visibleAddedModels(db: PrismaClient, viewerId: string | null): Promise<AddedModel[]> {
  const rows = await db.userModel.findMany({
    where: { OR: [{ forEveryone: true }, ...(viewerId ? [{ addedById: viewerId }] : [])] },
    select: SELECT,
    orderBy: { createdAt: 'asc' },
  });
  const byId = new Map<string, AddedModel>();
  for (const row of rows) {
    const added = toAdded(row, viewerId);
    if (!byId.has(row.modelId) || added.addedBy === 'you') byId.set(row.modelId, added);
  }
  return [...byId.values()];
}

/** One added model `viewerId` may see (null: only those for everyone). */
export async function findAddedModel(
  db: PrismaClient,
  id: string,
  viewerId: string | null,
): Promise<AddedModel | null> {
  const row = await db.userModel.findFirst({
    where: { modelId: id, OR: [{ forEveryone: true }, ...(viewerId ? [{ addedById: viewerId }] : [])] },
    select: SELECT,
    orderBy: { forEveryone: 'asc' },
  });
  return row ? toAdded(row, viewerId) : null;
}

/**
 * Which of `ids` are models added by repo id that `userId`'s catalogue does not show (another account's own
 * addition): what a peer of that account may not share. Ids no one added (built-in ones, a peer's own) are not named.
 */
export async function hiddenAddedModels(db: PrismaClient, userId: string, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db.userModel.findMany({
    where: { modelId: { in: [...ids] } },
    select: { modelId: true, addedById: true, forEveryone: true },
  });
  const seen = new Set(rows.filter((row) => row.forEveryone || row.addedById === userId).map((row) => row.modelId));
  return [...new Set(rows.map((row) => row.modelId))].filter((id) => !seen.has(id));
}

/**
 * Whether the files of `repo` (the /models route) are a model added by repo id that this caller's catalogue shows:
 * `everyone` when an operator added it for everyone, `own` when the caller's account added it for itself, else null.
 * `viewer` (the caller's account, from its session) is asked only when no addition for everyone settles it.
 */
export async function addedRepoAccess(
  db: PrismaClient,
  repo: string,
  viewer: () => Promise<string | null>,
): Promise<'everyone' | 'own' | null> {
  const sameRepo = { equals: repo, mode: 'insensitive' } as const;
  if (await db.userModel.findFirst({ where: { repo: sameRepo, forEveryone: true }, select: { id: true } }))
    return 'everyone';
  const viewerId = await viewer();
  if (!viewerId) return null;
  const own = await db.userModel.findFirst({ where: { repo: sameRepo, addedById: viewerId }, select: { id: true } });
  return own ? 'own' : null;
}

/** Any added model of this id, whoever added it (resuming a download after a restart). */
export async function anyAddedModel(db: PrismaClient, id: string): Promise<ManifestEntry | undefined> {
  const row = await db.userModel.findFirst({ where: { modelId: id }, select: SELECT });
  return row ? toAdded(row, null).entry : undefined;
}

export interface AddModelDeps {
  db: PrismaClient;
  hub: HubClient;
  env: Pick<Env, 'MODELS_ADDED_PER_ACCOUNT' | 'MODEL_ADD_REPO_PATTERN'>;
  /** The built-in (or MANIFEST_PATH) catalogue: a repo listed there is not added again. */
  builtin: ManifestEntry[];
  signal: AbortSignal;
}

export interface AddModelCaller {
  userId: string;
  operator: boolean;
}

/** Checks `input` against the caps and the Hub, then adds it to the caller's catalogue (or everyone's, by an operator). */
export async function addModel(deps: AddModelDeps, caller: AddModelCaller, input: ModelAddInput) {
  const { db, env } = deps;
  const parsed = parseRepoInput(input.repo);
  if (!parsed) throw refuse('input', 'Expected a Hub repo id (owner/name) or its huggingface.co URL');
  const repo = parsed.repo;
  const revision = input.revision ?? parsed.revision ?? 'main';
  if (input.forEveryone && !caller.operator) {
    throw refuse('input', 'Only an operator of this server can add a model for everyone', 'FORBIDDEN');
  }
  if (env.MODEL_ADD_REPO_PATTERN && !new RegExp(env.MODEL_ADD_REPO_PATTERN).test(repo)) {
    throw refuse(
      'pattern',
      `This server adds only repos matching ${env.MODEL_ADD_REPO_PATTERN}; ${repo} does not`,
      'FORBIDDEN',
    );
  }
  const builtin = deps.builtin.find((entry) => entry.repo.toLowerCase() === repo.toLowerCase());
  if (builtin) throw refuse('duplicate', `${repo} is in the catalogue already, as ${builtin.name}`, 'CONFLICT');
  const modelId = addedModelId(repo, revision);
  const existing = await findAddedModel(db, modelId, caller.userId);
  if (existing && (existing.addedBy === 'you' || existing.forEveryone)) {
    const whose = existing.addedBy === 'you' ? 'your catalogue' : 'the catalogue (an operator added it for everyone)';
    throw refuse('duplicate', `${repo} is in ${whose} already`, 'CONFLICT');
  }
  const count = await db.userModel.count({ where: { addedById: caller.userId } });
  if (count >= env.MODELS_ADDED_PER_ACCOUNT) {
    throw refuse(
      'limit',
      `An account adds at most ${env.MODELS_ADDED_PER_ACCOUNT} models (MODELS_ADDED_PER_ACCOUNT); remove one first`,
      'TOO_MANY',
    );
  }
  let checked;
  try {
    checked = await checkHubModel(deps.hub, repo, revision, deps.signal);
  } catch (error) {
    if (error instanceof ModelCheckError) throw refuse(error.check, error.message);
    throw error;
  }
  const name = repo.split('/')[1] ?? repo;
  await db.userModel.create({
    data: {
      modelId,
      addedById: caller.userId,
      forEveryone: input.forEveryone === true,
      repo,
      revision,
      checkedCommit: checked.commit,
      name: name.slice(0, 96),
      license: checked.license,
      modelType: checked.modelType,
      dtypeWebgpu: checked.dtype.webgpu,
      dtypeWasm: checked.dtype.wasm,
      contextLength: checked.contextLength,
      sizes: checked.sizes,
    },
  });
  const added = await findAddedModel(db, modelId, caller.userId);
  if (!added) throw new ServiceError('NOT_FOUND', `${repo} was added but cannot be read back`);
  return { ...added, commit: checked.commit, modelType: checked.modelType };
}

/** Takes a model out of the caller's catalogue (an operator's for everyone too, by an operator); cached files stay. */
export async function forgetModel(db: PrismaClient, caller: AddModelCaller, id: string): Promise<{ removed: boolean }> {
  const { count } = await db.userModel.deleteMany({
    where: { modelId: id, OR: [{ addedById: caller.userId }, ...(caller.operator ? [{ forEveryone: true }] : [])] },
  });
  if (count === 0) throw new ServiceError('NOT_FOUND', `No model ${id} that you added`);
  return { removed: true };
}
