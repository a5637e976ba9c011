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

// One runtime per app, keyed by the app's env object (each buildApp has its own): the request context has no
// slot for chat state yet, and a module-wide one would let two apps in one process share stream counts.
const runtimes = new WeakMap<Env, ChatRuntime>();

export function chatRuntime(env: Env): ChatRuntime {
  let runtime = runtimes.get(env);
  if (!runtime) {
    runtime = {
      providers: createProviders(env),
      slots: new StreamSlots({ perUser: env.CHAT_MAX_STREAMS_PER_USER, total: env.CHAT_MAX_STREAMS }),
    };
    runtimes.set(env, runtime);
  }
  return runtime;
}

export { ProviderError } from './provider.ts';
export type { ChatProvider, ProviderChunk, ProviderRequest } from './provider.ts';
