// The Hub's inference router speaks OpenAI's chat API; a model may name its backend as `repo:provider`.
import type { Env } from '../env.ts';
import { openAICompatibleProvider } from './openai-compatible.ts';
import type { ChatProvider } from './provider.ts';

export function huggingfaceProvider(env: Env): ChatProvider {
  return openAICompatibleProvider({
    id: 'huggingface',
    label: 'Hugging Face',
    defaultModel: 'meta-llama/Llama-3.1-8B-Instruct',
    baseUrl: env.HF_INFERENCE_BASE_URL,
    apiKey: env.HF_TOKEN,
    models: env.HF_MODELS,
    keyVariable: 'HF_TOKEN',
    timeoutMs: env.CHAT_UPSTREAM_TIMEOUT_MS,
  });
}
