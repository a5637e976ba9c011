// A conversation's settings, applied on every route (device, mesh, cloud), and how each route receives them.
import type { EngineMessage } from '../../../shared/engine-protocol.ts';
import type { JobSampling } from '../../../shared/peer-protocol.ts';
import type { ChatSampling } from '../../../shared/schemas/chat.ts';
import { type ChatSettings, SETTINGS_LIMITS } from '../../../shared/schemas/chat-settings.ts';

export { type ChatSettings, ChatSettingsSchema, SETTINGS_LIMITS } from '../../../shared/schemas/chat-settings.ts';

export const DEFAULT_SETTINGS: ChatSettings = {
  systemPrompt: '',
  temperature: 0.7,
  topP: 0.95,
  maxNewTokens: 256,
  seed: '',
  model: '',
};

/** The settings' seed, or a fresh one for this answer. */
function seedOf(settings: ChatSettings): number {
  return settings.seed === '' ? Math.floor(Math.random() * SETTINGS_LIMITS.seed) : settings.seed;
}

/** Sampling for this device's engine and for a peer's: every field set, the seed drawn when none is fixed. */
export function engineSampling(settings: ChatSettings): JobSampling {
  return {
    temperature: settings.temperature,
    topP: settings.topP,
    maxNewTokens: settings.maxNewTokens,
    seed: seedOf(settings),
  };
}

/** Sampling for chat.stream: the provider gets the same values (OpenAI's temperature, top_p, max_tokens, seed). */
export function cloudSampling(settings: ChatSettings): ChatSampling {
  return {
    temperature: settings.temperature,
    topP: settings.topP,
    maxTokens: settings.maxNewTokens,
    ...(settings.seed === '' ? {} : { seed: settings.seed }),
  };
}

/** The prompt a route sends: the system prompt first, when there is one. */
export function withSystemPrompt(settings: ChatSettings, messages: EngineMessage[]): EngineMessage[] {
  const system = settings.systemPrompt.trim();
  return system ? [{ role: 'system', content: system }, ...messages] : messages;
}
