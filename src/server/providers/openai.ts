import type { Env } from '../env.ts';
import { openAICompatibleProvider } from './openai-compatible.ts';
import type { ChatProvider } from './provider.ts';

export function openaiProvider(env: Env): ChatProvider {
  return openAICompatibleProvider({
    id: 'openai',
    label: 'OpenAI',
    defaultModel: 'gpt-4o-mini',
    baseUrl: env.OPENAI_BASE_URL,
    apiKey: env.OPENAI_API_KEY,
    models: env.OPENAI_MODELS,
    keyVariable: 'OPENAI_API_KEY',
    timeoutMs: env.CHAT_UPSTREAM_TIMEOUT_MS,
  });
}
