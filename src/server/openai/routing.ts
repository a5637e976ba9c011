// Which model answers an OpenAI-compatible request: the one place that reads a model name (models added by repo
// id, which need the database and the room, are asked after it: added-models.ts). A target is a
// discriminated union so that serving on the mesh (catalogue ids, in the room named by X-Mesh-Room) and on the
// server's own models can be added as kinds of their own.
import { ChatModelSchema, type ChatProviderId } from '../../shared/schemas/chat.ts';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import type { ChatProviders } from '../providers/index.ts';
import { type ChatProvider, allowsModel } from '../providers/provider.ts';
import { OpenAIError } from './errors.ts';

/** The model name that means the keyless stub provider (its canned replies name no real model). */
export const STUB_MODEL_ID = 'stub';
const CLOUD_PROVIDERS = ['openai', 'openrouter', 'huggingface'] as const satisfies readonly ChatProviderId[];

export type ModelTarget =
  /** The stub or a cloud provider, within its allow-list: `model` is the provider's own name for it. */
  | { kind: 'provider'; provider: ChatProvider; model: string }
  /** A catalogue model: served by peers of a room (X-Mesh-Room), the server's own SERVE_MODELS among them. */
  | { kind: 'mesh'; entry: ManifestEntry };

export interface RoutingSources {
  providers: ChatProviders;
  manifest: readonly ManifestEntry[];
}

/** The target of a model name, or the OpenAI error that refuses it (unknown, unconfigured or not allowed: 404). */
export function routeModel(name: string, sources: RoutingSources): ModelTarget {
  if (name === STUB_MODEL_ID)
    return { kind: 'provider', provider: sources.providers.stub, model: sources.providers.stub.defaultModel };
  const slash = name.indexOf('/');
  const prefix = slash === -1 ? '' : name.slice(0, slash);
  const provider = CLOUD_PROVIDERS.find((id) => id === prefix);
  if (provider !== undefined) {
    const chat = sources.providers[provider];
    const model = ChatModelSchema.safeParse(name.slice(slash + 1));
    if (!model.success)
      throw OpenAIError.modelNotFound(
        `The model \`${name}\` does not exist: ${model.error.issues[0]?.message ?? 'bad name'}`,
      );
    if (!chat.configured)
      throw OpenAIError.modelNotFound(
        `The model \`${name}\` is not available: ${chat.label} is not configured on this server`,
      );
    if (!allowsModel(chat, model.data)) {
      throw OpenAIError.modelNotFound(
        `The model \`${name}\` is not available: ${chat.label} on this server does not offer it (GET /v1/models lists those it does)`,
      );
    }
    return { kind: 'provider', provider: chat, model: model.data };
  }
  const entry = sources.manifest.find((candidate) => candidate.id === name);
  if (entry) return { kind: 'mesh', entry };
  throw OpenAIError.modelNotFound(
    `The model \`${name}\` does not exist (GET /v1/models lists the models this server offers)`,
  );
}

export interface ListedModel {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/**
 * What GET /v1/models lists: the stub, then each configured provider's allowed models as `<provider>/<model>` (a
 * provider open to any model lists its default). `created` is when this server started: the models have no date.
 */
export function listModels(sources: Pick<RoutingSources, 'providers'>, created: number): ListedModel[] {
  const listed: ListedModel[] = [{ id: STUB_MODEL_ID, object: 'model', created, owned_by: 'stub' }];
  for (const id of CLOUD_PROVIDERS) {
    const provider = sources.providers[id];
    if (!provider.configured) continue;
    const models = provider.models === '*' ? [provider.defaultModel] : provider.models;
    for (const model of models) listed.push({ id: `${id}/${model}`, object: 'model', created, owned_by: id });
  }
  return listed;
}
