// Presets of chat settings kept with an account (guests keep theirs on the device): at most PRESET_LIMITS.presets
// each, one per name, checked with the shared schema on the way in and out.
import {
  type ChatSettings,
  ChatSettingsSchema,
  PRESET_LIMITS,
  type Preset,
} from '../../shared/schemas/chat-settings.ts';
import type { PrismaClient } from '../db/client.ts';
import type { Prisma } from '../db/generated/client.ts';
import { ServiceError } from './errors.ts';

/** Oldest first, as they were saved; a row an older schema wrote and this one refuses is left out. */
export async function listPresets(db: PrismaClient, userId: string): Promise<Preset[]> {
  const rows = await db.chatPreset.findMany({
    where: { userId },
    orderBy: { createdAt: 'asc' },
    take: PRESET_LIMITS.presets,
    select: { name: true, settings: true },
  });
  return rows.flatMap((row) => {
    const settings = ChatSettingsSchema.safeParse(row.settings);
    return settings.success ? [{ name: row.name, settings: settings.data }] : [];
  });
}

/** Saves a preset, replacing the one of the same name; a new name past the cap is TOO_MANY, nothing written. */
export async function savePreset(db: PrismaClient, userId: string, name: string, settings: ChatSettings) {
  await db.$transaction(async (tx) => {
    // One save per account at a time: two at once could each fit under the cap and together pass it.
    await tx.$queryRaw`SELECT 1 FROM "User" WHERE "id" = ${userId}::uuid FOR UPDATE`;
    const json = settings as Prisma.InputJsonObject;
    const { count } = await tx.chatPreset.updateMany({ where: { userId, name }, data: { settings: json } });
    if (count > 0) return;
    const held = await tx.chatPreset.count({ where: { userId } });
    if (held >= PRESET_LIMITS.presets) {
      throw new ServiceError('TOO_MANY', `At most ${PRESET_LIMITS.presets} presets: delete one first`);
    }
    await tx.chatPreset.create({ data: { userId, name, settings: json }, select: { id: true } });
  });
}

export async function removePreset(db: PrismaClient, userId: string, name: string) {
  const { count } = await db.chatPreset.deleteMany({ where: { userId, name } });
  if (count === 0) throw new ServiceError('NOT_FOUND', 'No preset of that name among yours');
}
