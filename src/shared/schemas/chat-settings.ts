// A conversation's settings (system prompt, sampling, model) and saved presets of them: one schema for the client's
// settings panel, the device's stored conversations and presets, and the server's conversation.settings and
// preset.* procedures.
import { z } from 'zod';
import { ENGINE_LIMITS } from '../engine-protocol.ts';
import { CHAT_LIMITS, ChatSamplingSchema } from './chat.ts';

const sampling = ChatSamplingSchema.shape;

/** The same bounds the engine (src/shared/engine-protocol.ts) and chat.stream (./chat.ts) check. */
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
    temperature: sampling.temperature.unwrap(),
    topP: sampling.topP.unwrap(),
    maxNewTokens: z
      .number()
      .int()
      .min(1, 'Max new tokens is at least 1')
      .max(SETTINGS_LIMITS.maxNewTokens, `Max new tokens is at most ${SETTINGS_LIMITS.maxNewTokens}`),
    /** Empty: a new seed per answer. A fixed seed makes an answer reproducible, on this device or any peer. */
    seed: z.union([z.literal(''), sampling.seed.unwrap()]),
    /** The cloud provider's or the mesh's model; empty: the provider's default, or the most shared model. */
    model: z.string().max(CHAT_LIMITS.modelChars).default(''),
  })
  .strict();
export type ChatSettings = z.infer<typeof ChatSettingsSchema>;

export const PRESET_LIMITS = { presets: 50, nameChars: 60 } as const;

export const PresetNameSchema = z
  .string()
  .trim()
  .min(1, 'Name the preset')
  .max(PRESET_LIMITS.nameChars, `A name is at most ${PRESET_LIMITS.nameChars} characters`);

/** A preset: named settings. preset.save takes one; saving a name that exists replaces it. */
export const PresetSchema = z.object({ name: PresetNameSchema, settings: ChatSettingsSchema }).strict();
export type Preset = z.infer<typeof PresetSchema>;

export const PresetRefSchema = z.object({ name: PresetNameSchema }).strict();
