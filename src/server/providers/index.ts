// The provider registry: which providers exist, built from env (the only place keys and base URLs come from).
import type { ChatProviderId, ChatProviderInfo } from '../../shared/schemas/chat.ts';
import type { Env } from '../env.ts';
import { opensToGuests } from './access.ts';
import { huggingfaceProvider } from './huggingface.ts';
import { openaiProvider } from './openai.ts';
import { openrouterProvider } from './openrouter.ts';
import type { ChatProvider } from './provider.ts';
import { StreamSlots } from './stream-slots.ts';
import { stubProvider } from './stub.ts';

export type ChatProviders = Record<ChatProviderId, ChatProvider>;

export function createProviders(env: Env): ChatProviders {
  return {
    stub: stubProvider(),
    openai: openaiProvider(env),
    openrouter: openrouterProvider(env),
    huggingface: huggingfaceProvider(env),
  };
}

/** What clients may know about a provider: never its key, base URL or model list. */
export function providerInfo(provider: ChatProvider, env: Pick<Env, 'CHAT_PROVIDERS_FOR_GUESTS'>): ChatProviderInfo {
  return {
    id: provider.id,
    label: provider.label,
    configured: provider.configured,
    defaultModel: provider.defaultModel,
    models: provider.models === '*' ? null : [...provider.models],
    stub: provider.stub,
    openToGuests: opensToGuests(provider, env),
  };
}

export interface ChatRuntime {
  providers: ChatProviders;
  slots: StreamSlots;
}

/** The app's chat runtime: built once in buildApp and handed to the procedures and the /v1 routes as a service, so
 * two apps in one process (tests) never share stream counts. */
export function createChatRuntime(env: Env): ChatRuntime {
  return {
    providers: createProviders(env),
    slots: new StreamSlots({ perUser: env.CHAT_MAX_STREAMS_PER_USER, total: env.CHAT_MAX_STREAMS }),
  };
}

export { ProviderError } from './provider.ts';
export type { ChatProvider, ProviderChunk, ProviderRequest } from './provider.ts';
