// What the app remembers between visits about the model to load when it opens: the last model loaded, and whether
// to load it at all (a setting). localStorage is read back through zod: it outlives versions of the app.
import { z } from 'zod';
import { ModelIdSchema } from '../../../shared/schemas/models.ts';

const LAST_MODEL_KEY = 'mesh:last-model';
const RESTORE_KEY = 'mesh:restore-last-model';
const LastModelSchema = z.object({ id: ModelIdSchema }).strict();

function read(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    // Storage disabled by the browser: nothing is remembered, and nothing breaks.
    return null;
  }
}

function write(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // As above.
  }
}

export function lastModelId(): string | null {
  const raw = read(LAST_MODEL_KEY);
  if (raw === null) return null;
  try {
    const parsed = LastModelSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data.id : null;
  } catch {
    return null;
  }
}

export function rememberLastModel(id: string | null): void {
  write(LAST_MODEL_KEY, id === null ? null : JSON.stringify({ id }));
}

/** On unless the person turned it off. */
export function restoreOnOpen(): boolean {
  return read(RESTORE_KEY) !== 'off';
}

export function setRestoreOnOpen(on: boolean): void {
  write(RESTORE_KEY, on ? null : 'off');
}
