import type { Env } from '../env.ts';
import { openAICompatibleProvider } from './openai-compatible.ts';
import type { ChatProvider } from './provider.ts';

export function openrouterProvider(env: Env): ChatProvider {
  return openAICompatibleProvider({
    id: 'openrouter',
    label: 'OpenRouter',
    defaultModel: 'openai/gpt-4o-mini',
    baseUrl: env.OPENROUTER_BASE_URL,
    apiKey: env.OPENROUTER_API_KEY,
    models: env.OPENROUTER_MODELS,
    keyVariable: 'OPENROUTER_API_KEY',
    timeoutMs: env.CHAT_UPSTREAM_TIMEOUT_MS,
    // OpenRouter's optional app attribution (https://openrouter.ai/docs/api-reference/overview#headers).
    headers: { 'x-title': 'Mesh NanoLLM', ...(env.PUBLIC_ORIGIN ? { 'http-referer': env.PUBLIC_ORIGIN } : {}) },
  });
}
