// The conversation's settings panel (a popover behind `chat-settings`): system prompt, top-p, max new tokens, the
// model for cloud and mesh routes, and presets (with the account, or on the device). Loaded lazily (Radix's popover) to keep the first paint small.
import { SlidersHorizontalIcon, Trash2Icon } from 'lucide-react';
import { useEffect, useState } from 'react';
import { z } from 'zod';
import { chatErrorText } from './chat-errors.ts';
import { Button } from '../../components/ui/button.tsx';
import { Popover, PopoverContent, PopoverTrigger } from '../../components/ui/popover.tsx';
import type { Preset, PresetStore } from './presets.ts';
import { type ChatSettings, SETTINGS_LIMITS } from './settings.ts';

export interface ModelChoice {
  value: string;
  label: string;
}

const field = 'flex flex-col gap-1 text-sm';

export default function ChatSettingsPanel({
  settings,
  onChange,
  models,
  disabled,
  presets: store,
}: {
  settings: ChatSettings;
  onChange(patch: Partial<ChatSettings>): void;
  /** The route's models (cloud provider's allow-list, models peers share); null: the route has no choice. */
  models: ModelChoice[] | null;
  disabled: boolean;
  /** Where presets are kept: with the account when signed in, else on this device. */
  presets: PresetStore;
}) {
  const [presets, setPresets] = useState<Preset[]>([]);
  const [name, setName] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    store.list().then(
      (list) => current && setPresets(list),
      (cause: unknown) => current && setProblem(`Presets could not be read: ${chatErrorText(cause)}`),
    );
    return () => {
      current = false;
    };
  }, [store]);
  const change = (work: Promise<Preset[]>, then?: () => void) =>
    work.then(
      (list) => {
        setPresets(list);
        setProblem(null);
        then?.();
      },
      (cause: unknown) =>
        setProblem(cause instanceof z.ZodError ? (cause.issues[0]?.message ?? 'Not saved') : chatErrorText(cause)),
    );
  return (
    <Popover>
      <PopoverTrigger asChild>
        <Button data-testid="chat-settings" aria-label="Chat settings" disabled={disabled}>
          <SlidersHorizontalIcon />
          <span className="hidden sm:inline">Settings</span>
        </Button>
      </PopoverTrigger>
      <PopoverContent className="flex max-h-[80dvh] flex-col gap-3 overflow-y-auto" aria-label="Chat settings">
        <label className={field}>
          System prompt
          <textarea
            data-testid="chat-system-prompt"
            rows={3}
            maxLength={SETTINGS_LIMITS.systemPromptChars}
            placeholder="None"
            value={settings.systemPrompt}
            onChange={(event) => onChange({ systemPrompt: event.target.value })}
          />
        </label>
        <div className="grid grid-cols-2 gap-3">
          <label className={field}>
            Top-p
            <input
              type="number"
              data-testid="chat-top-p"
              min={0.01}
              max={1}
              step={0.05}
              value={settings.topP}
              onChange={(event) => {
                const value = Number(event.target.value);
                if (value > 0 && value <= 1) onChange({ topP: value });
              }}
            />
          </label>
          <label className={field}>
            Max new tokens
            <input
              type="number"
              data-testid="chat-max-tokens"
              min={1}
              max={SETTINGS_LIMITS.maxNewTokens}
              step={1}
              value={settings.maxNewTokens}
              onChange={(event) => {
                const value = Math.round(Number(event.target.value));
                if (value >= 1) onChange({ maxNewTokens: Math.min(SETTINGS_LIMITS.maxNewTokens, value) });
              }}
            />
          </label>
        </div>
        {models && (
          <label className={field}>
            Model
            <select
              data-testid="chat-model"
              value={models.some((m) => m.value === settings.model) ? settings.model : ''}
              onChange={(event) => onChange({ model: event.target.value })}
            >
              {models.map((m) => (
                <option key={m.value} value={m.value}>
                  {m.label}
                </option>
              ))}
            </select>
          </label>
        )}
        <fieldset className="flex flex-col gap-2 rounded-lg border border-border p-2">
          <legend className="px-1 text-sm" data-testid="chat-presets-where">
            Presets (kept {store.where})
          </legend>
          <ul className="m-0 flex list-none flex-col gap-1 p-0">
            {presets.map((preset) => (
              <li key={preset.name} className="flex items-center gap-1" data-testid="chat-preset">
                <Button size="sm" className="grow justify-start" onClick={() => onChange(preset.settings)}>
                  {preset.name}
                </Button>
                <Button
                  variant="ghost"
                  size="icon"
                  aria-label={`Delete preset ${preset.name}`}
                  onClick={() => void change(store.remove(preset.name))}
                >
                  <Trash2Icon />
                </Button>
              </li>
            ))}
          </ul>
          <form
            className="flex gap-2"
            onSubmit={(event) => {
              event.preventDefault();
              void change(store.save(name, settings), () => setName(''));
            }}
          >
            <label className="sr-only" htmlFor="chat-preset-name">
              Preset name
            </label>
            <input
              id="chat-preset-name"
              data-testid="chat-preset-name"
              className="min-w-0 grow"
              placeholder="Name these settings"
              value={name}
              onChange={(event) => setName(event.target.value)}
            />
            <Button type="submit" data-testid="chat-preset-save">
              Save
            </Button>
          </form>
          {problem && (
            <p className="error m-0 text-sm" role="alert">
              {problem}
            </p>
          )}
        </fieldset>
      </PopoverContent>
    </Popover>
  );
}
