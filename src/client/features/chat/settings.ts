// A conversation's settings, applied on every route (device, mesh, cloud), and how each route receives them.
import { z } from 'zod';
import { ENGINE_LIMITS, type EngineMessage } from '../../../shared/engine-protocol.ts';
import type { JobSampling } from '../../../shared/peer-protocol.ts';
import { CHAT_LIMITS, type ChatSampling } from '../../../shared/schemas/chat.ts';

/** The same bounds the engine (src/shared/engine-protocol.ts) and chat.stream (src/shared/schemas/chat.ts) check. */
export const SETTINGS_LIMITS = {
  systemPromptChars: CHAT_LIMITS.messageChars,
  maxNewTokens: Math.min(ENGINE_LIMITS.maxNewTokens, CHAT_LIMITS.maxTokens),
  /** chat.stream's seed is a signed 32-bit integer (OpenAI's); the engine's is unsigned. */
  seed: 2 ** 31 - 1,
} as const;

export const ChatSettingsSchema = z
  .object({
    systemPrompt: z
      .string()
      .max(
        SETTINGS_LIMITS.systemPromptChars,
        `The system prompt is at most ${SETTINGS_LIMITS.systemPromptChars} characters`,
      ),
    temperature: z.number().min(0, 'Temperature is at least 0').max(2, 'Temperature is at most 2'),
    topP: z.number().gt(0, 'Top-p is above 0').max(1, 'Top-p is at most 1'),
    maxNewTokens: z
      .number()
      .int()
      .min(1, 'Max new tokens is at least 1')
      .max(SETTINGS_LIMITS.maxNewTokens, `Max new tokens is at most ${SETTINGS_LIMITS.maxNewTokens}`),
    /** Empty: a new seed per answer. A fixed seed makes an answer reproducible, on this device or any peer. */
    seed: z.union([z.literal(''), z.number().int().min(0).max(SETTINGS_LIMITS.seed)]),
    /** The cloud provider's or the mesh's model; empty: the provider's default, or the most shared model. */
    model: z.string().max(CHAT_LIMITS.modelChars).default(''),
  })
  .strict();
export type ChatSettings = z.infer<typeof ChatSettingsSchema>;

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
