// Who may start which provider chat, decided before any upstream request (docs/SECURITY.md): the paid providers
// are for accounts unless CHAT_PROVIDERS_FOR_GUESTS, and each answers only the models its operator listed.
import type { Env } from '../env.ts';
import { type ChatProvider, ProviderError, allowsModel } from './provider.ts';

type AccessEnv = Pick<Env, 'CHAT_PROVIDERS_FOR_GUESTS'>;

/** The stub costs nothing, so guests keep it (the embedded defaults still demo the cloud route); the rest cost money. */
export function opensToGuests(provider: Pick<ChatProvider, 'stub'>, env: AccessEnv): boolean {
  return provider.stub || env.CHAT_PROVIDERS_FOR_GUESTS;
}

/** Models named in a refusal: enough to pick from, not a catalogue. */
const NAMED_MODELS = 5;

export interface AccessRequest {
  provider: Pick<ChatProvider, 'label' | 'stub' | 'configured' | 'models'>;
  model: string;
  account: boolean;
}

/** Why this person may not run this chat, or null. An unconfigured provider is left to refuse itself (it names its key). */
export function accessRefusal(request: AccessRequest, env: AccessEnv): ProviderError | null {
  const { provider, model } = request;
  if (!provider.configured) return null;
  if (!request.account && !opensToGuests(provider, env)) {
    return new ProviderError(
      'ACCOUNT_REQUIRED',
      `${provider.label} is for accounts on this server: sign up or log in to use it (guests can use the stub)`,
    );
  }
  if (!allowsModel(provider, model)) {
    const listed = provider.models === '*' ? [] : provider.models;
    const named = listed.slice(0, NAMED_MODELS).join(', ') + (listed.length > NAMED_MODELS ? ', …' : '');
    return new ProviderError(
      'MODEL_NOT_ALLOWED',
      `${provider.label} on this server does not offer the model "${model}"; it offers ${named}`,
    );
  }
  return null;
}
