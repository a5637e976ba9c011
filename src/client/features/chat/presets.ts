// Presets of chat settings a person saves and reuses: kept with the account when signed in (preset.*), on this
// device (localStorage) for guests and while offline; checked with the shared schema on the way in and out.
import { z } from 'zod';
import { PRESET_LIMITS, type Preset, PresetSchema } from '../../../shared/schemas/chat-settings.ts';
import { trpc } from '../../lib/trpc.ts';
import type { ChatSettings } from './settings.ts';

export { PRESET_LIMITS, type Preset } from '../../../shared/schemas/chat-settings.ts';

export interface PresetStore {
  /** Where they are kept, in words: "with your account", "on this device". */
  readonly where: string;
  list(): Promise<Preset[]>;
  /** Saves (or replaces, by name) a preset; returns the list, or rejects with the reason it was refused. */
  save(name: string, settings: ChatSettings): Promise<Preset[]>;
  remove(name: string): Promise<Preset[]>;
}

const KEY = 'mesh:chat-presets';

function loadPresets(): Preset[] {
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

export const devicePresets: PresetStore = {
  where: 'on this device',
  list: async () => loadPresets(),
  async save(name, settings) {
    const preset = PresetSchema.parse({ name, settings });
    const others = loadPresets().filter((p) => p.name !== preset.name);
    if (others.length >= PRESET_LIMITS.presets)
      throw new Error(`At most ${PRESET_LIMITS.presets} presets: delete one first`);
    const next = [...others, preset];
    localStorage.setItem(KEY, JSON.stringify(next));
    return next;
  },
  async remove(name) {
    const next = loadPresets().filter((p) => p.name !== name);
    localStorage.setItem(KEY, JSON.stringify(next));
    return next;
  },
};

export const accountPresets: PresetStore = {
  where: 'with your account',
  list: () => trpc.preset.list.query(),
  async save(name, settings) {
    // Checked here first: a bad name or value gets the schema's own message without a round trip.
    await trpc.preset.save.mutate(PresetSchema.parse({ name, settings }));
    return trpc.preset.list.query();
  },
  async remove(name) {
    await trpc.preset.remove.mutate({ name });
    return trpc.preset.list.query();
  },
};
