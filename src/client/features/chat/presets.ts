// Presets of chat settings a person saves and reuses, kept on this device (localStorage), checked on the way in.
import { z } from 'zod';
import { type ChatSettings, ChatSettingsSchema } from './settings.ts';

export const PRESET_LIMITS = { presets: 50, nameChars: 60 } as const;

const PresetSchema = z
  .object({
    name: z
      .string()
      .trim()
      .min(1, 'Name the preset')
      .max(PRESET_LIMITS.nameChars, `A name is at most ${PRESET_LIMITS.nameChars} characters`),
    settings: ChatSettingsSchema,
  })
  .strict();
export type Preset = z.infer<typeof PresetSchema>;

const KEY = 'mesh:chat-presets';

export function loadPresets(): Preset[] {
  try {
    const parsed = z
      .array(PresetSchema)
      .max(PRESET_LIMITS.presets)
      .safeParse(JSON.parse(localStorage.getItem(KEY) ?? '[]'));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

/** Saves (or replaces, by name) a preset; returns the list, or throws with the reason it was refused. */
export function savePreset(name: string, settings: ChatSettings): Preset[] {
  const preset = PresetSchema.parse({ name, settings });
  const others = loadPresets().filter((p) => p.name !== preset.name);
  if (others.length >= PRESET_LIMITS.presets)
    throw new Error(`At most ${PRESET_LIMITS.presets} presets: delete one first`);
  const next = [...others, preset];
  localStorage.setItem(KEY, JSON.stringify(next));
  return next;
}

export function deletePreset(name: string): Preset[] {
  const next = loadPresets().filter((p) => p.name !== name);
  localStorage.setItem(KEY, JSON.stringify(next));
  return next;
}
