// Models added by repo id (README "Add a model by its repo id") on the OpenAI-compatible API. Who may ask one
// (README "OpenAI-compatible API", docs/SECURITY.md):
// - the accounts that see it in their catalogue (the one that added it; everyone, when an operator added it for
//   everyone), in any room they may name in X-Mesh-Room;
// - any member of a room where a peer shares it now, in that room: sharing it there is its sharer's offer to that
//   room, as the browser's mesh route already lets every member of the room ask it.
// Anyone else gets the 404 an unknown model gets, so a key cannot probe which repos other accounts added.
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { ModelIdSchema } from '../../shared/schemas/models.ts';
import type { PrismaClient } from '../db/client.ts';
import type { MeshNamespace } from '../socket/mesh.handlers.ts';
import { anyAddedModel, findAddedModel } from '../services/user-models.ts';
import { sharedModels } from './room-models.ts';

export interface AddedModelAsk {
  id: string;
  userId: string;
  /** The room the request names (X-Mesh-Room, already checked: the global room or one the account joined). */
  room: string;
}

/** The added model `ask.id` if the key's account may ask it in `ask.room`, else null. */
export async function addedModelFor(
  db: PrismaClient,
  mesh: MeshNamespace,
  ask: AddedModelAsk,
): Promise<ManifestEntry | null> {
  if (!ModelIdSchema.safeParse(ask.id).success) return null;
  const seen = await findAddedModel(db, ask.id, ask.userId);
  if (seen) return seen.entry;
  const entry = await anyAddedModel(db, ask.id);
  if (!entry) return null;
  const shared = await sharedModels(mesh, [ask.room]);
  return shared.has(ask.id) ? entry : null;
}

/** Which of `ids` (model ids peers share) are models someone added by repo id. */
export async function addedModelIds(db: PrismaClient, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.userModel.findMany({
    where: { modelId: { in: [...ids] } },
    select: { modelId: true },
    distinct: ['modelId'],
  });
  return new Set(rows.map((row) => row.modelId));
}
