// SERVE_MODELS (README "OpenAI-compatible API"): the models the server loads itself and shares into the global room.
// Built-in catalogue ids, and models added by repo id that an operator added for everyone: the server's own peer is
// a guest of the global room, so it serves only what every guest's catalogue shows. A model one account added for
// itself is refused at start (serving it in `global` would offer it to everyone). The server fetches each model's
// WASM dtype (what its onnxruntime-node peer runs) itself before its peer loads it through the `/models/` proxy, as
// an account's `models.download` would: its guest peer could not ask.
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import type { PrismaClient } from '../db/client.ts';
import type { ModelDownloader } from '../models/downloader.ts';
import { anyAddedModel, findAddedModel } from '../services/user-models.ts';

/** The catalogue entries SERVE_MODELS names, or the start-up error that names the ids it may not serve. */
export async function serveModelEntries(
  db: PrismaClient,
  manifest: readonly ManifestEntry[],
  ids: readonly string[],
): Promise<ManifestEntry[]> {
  const entries: ManifestEntry[] = [];
  const unknown: string[] = [];
  const own: string[] = [];
  for (const id of ids) {
    const builtin = manifest.find((entry) => entry.id === id);
    if (builtin) {
      entries.push(builtin);
      continue;
    }
    // Only the additions for everyone: what a viewer with no account of its own sees.
    const added = await findAddedModel(db, id, null);
    if (added) entries.push(added.entry);
    else if (await anyAddedModel(db, id)) own.push(id);
    else unknown.push(id);
  }
  if (unknown.length > 0)
    throw new Error(`SERVE_MODELS names models the catalogue does not have: ${unknown.join(', ')}`);
  if (own.length > 0)
    throw new Error(
      `SERVE_MODELS names models only the accounts that added them see: ${own.join(', ')} (the server shares its models in the global room, so it serves a model added by repo id only when an operator added it for everyone: models.add with forEveryone)`,
    );
  return entries;
}

/** Makes sure the server holds `entry`'s WASM dtype (fetching it from the Hub once); throws why it could not. */
export async function fetchForServing(downloader: ModelDownloader, entry: ManifestEntry): Promise<void> {
  if (entry.bundled) return;
  const dtype = entry.dtype.wasm;
  const started = await downloader.start(entry, null, dtype);
  await downloader.settled(entry.id, started.dtype);
  const status = await downloader.status(entry.id, started.dtype);
  if (status?.phase !== 'ready') {
    throw new Error(
      `The server could not fetch ${entry.name} (${dtype}) to serve it: ${status?.error?.message ?? status?.phase ?? 'no download'}`,
    );
  }
}
