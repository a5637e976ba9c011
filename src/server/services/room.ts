// Rooms and their members. Membership is stored; a join takes the room's row lock, so concurrent joins cannot
// overfill it (counting and inserting happen under the lock).
import { randomBytes } from 'node:crypto';
import type { Db, PrismaClient } from '../db/client.ts';
import { ServiceError } from './errors.ts';

export const GLOBAL_ROOM = 'global';

const roomSelect = {
  id: true,
  slug: true,
  name: true,
  visibility: true,
  capacity: true,
  ownerId: true,
  createdAt: true,
} as const;

function slugOf(name: string): string {
  const base = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  // A random tail: names repeat, links must not collide or be guessable from the name alone.
  return `${base || 'room'}-${randomBytes(4).toString('hex')}`;
}

export interface RoomInput {
  name: string;
  visibility: 'PUBLIC' | 'PRIVATE';
  capacity: number;
}

/** Creates a room owned by `ownerId`, who may own at most `maxOwned` rooms (ROOMS_PER_ACCOUNT; unlimited when unset). */
export async function createRoom(
  db: PrismaClient,
  ownerId: string,
  input: RoomInput,
  { maxOwned = Number.POSITIVE_INFINITY } = {},
) {
  return db.$transaction(async (tx) => {
    // Serialize this owner's creations: the count below sees every other one, so a burst cannot pass the cap.
    await tx.$queryRaw`SELECT id FROM "User" WHERE id = ${ownerId}::uuid FOR UPDATE`;
    if ((await tx.room.count({ where: { ownerId } })) >= maxOwned) {
      throw new ServiceError('FORBIDDEN', `An account may own at most ${maxOwned} rooms`);
    }
    const room = await tx.room.create({
      data: {
        slug: slugOf(input.name),
        name: input.name,
        visibility: input.visibility,
        capacity: input.capacity,
        ownerId,
        inviteCode: input.visibility === 'PRIVATE' ? randomBytes(18).toString('base64url') : null,
      },
      select: { ...roomSelect, inviteCode: true },
    });
    await tx.roomMember.create({ data: { roomId: room.id, userId: ownerId, role: 'OWNER' } });
    return room;
  });
}

/** Where a page ended: the last room's activity time (ms, as stored) and id, the order room.list sorts by. */
function encodeCursor(room: { lastActiveAt: Date; id: string }): string {
  return `${room.lastActiveAt.getTime()}_${room.id}`;
}

function decodeCursor(cursor: string): { at: Date; id: string } {
  const [at = '0', id = ''] = cursor.split('_');
  return { at: new Date(Number(at)), id };
}

/**
 * Rooms this user can see (public ones, and those they belong to) with member counts: the global room first,
 * then the others by recent activity, a page at a time. Keyset paging: a room that becomes active moves to the
 * front without shifting the pages after it.
 */
export async function listRooms(
  db: PrismaClient,
  userId: string,
  page: { cursor?: string | null | undefined; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor) : null;
  const select = {
    ...roomSelect,
    lastActiveAt: true,
    _count: { select: { members: true } },
    members: { where: { userId }, select: { role: true } },
  } as const;
  const [global, rows] = await Promise.all([
    after ? null : db.room.findUnique({ where: { slug: GLOBAL_ROOM }, select }),
    db.room.findMany({
      where: {
        slug: { not: GLOBAL_ROOM },
        OR: [{ visibility: 'PUBLIC' }, { members: { some: { userId } } }],
        ...(after && {
          AND: [{ OR: [{ lastActiveAt: { lt: after.at } }, { lastActiveAt: after.at, id: { lt: after.id } }] }],
        }),
      },
      orderBy: [{ lastActiveAt: 'desc' }, { id: 'desc' }],
      take: page.limit + 1,
      select,
    }),
  ]);
  const more = rows.length > page.limit;
  const shown = rows.slice(0, page.limit);
  const last = shown.at(-1);
  return {
    rooms: [...(global ? [global] : []), ...shown].map(({ _count, members, ...room }) => ({
      ...room,
      memberCount: _count.members,
      role: members[0]?.role ?? null,
    })),
    nextCursor: more && last ? encodeCursor(last) : null,
  };
}

/** A join or a leave: room.list puts recently active rooms first. */
async function touch(db: Db, roomId: string): Promise<void> {
  await db.room.update({ where: { id: roomId }, data: { lastActiveAt: new Date() }, select: { id: true } });
}

export async function roomBySlug(db: PrismaClient, slug: string) {
  return db.room.findUnique({ where: { slug }, select: roomSelect });
}

export async function isMember(db: PrismaClient, roomId: string, userId: string): Promise<boolean> {
  return (await db.roomMember.count({ where: { roomId, userId } })) > 0;
}

/** Adds the user to the room: private rooms need the invite code; full rooms refuse. Idempotent for members. */
export async function joinRoom(db: PrismaClient, userId: string, slug: string, inviteCode?: string) {
  return db.$transaction(
    async (tx) => {
      const found = await tx.room.findUnique({ where: { slug }, select: { ...roomSelect, inviteCode: true } });
      if (!found) throw new ServiceError('NOT_FOUND', `No room ${slug}`);
      if (found.slug === GLOBAL_ROOM) return found;
      // Serialize joins of this room: the count below and the insert after it see every other join.
      await tx.$queryRaw`SELECT id FROM "Room" WHERE id = ${found.id}::uuid FOR UPDATE`;
      if (await tx.roomMember.count({ where: { roomId: found.id, userId } })) {
        await touch(tx, found.id);
        return found;
      }
      if (found.visibility === 'PRIVATE' && (!inviteCode || inviteCode !== found.inviteCode)) {
        throw new ServiceError('FORBIDDEN', 'This room is private: join it with its invite link');
      }
      const members = await tx.roomMember.count({ where: { roomId: found.id } });
      if (members >= found.capacity)
        throw new ServiceError('CONFLICT', `This room is full (${found.capacity} members)`);
      await tx.roomMember.create({ data: { roomId: found.id, userId } });
      await touch(tx, found.id);
      return found;
      // Joins of one room wait for each other under its row lock: allow for a queue of them on a busy database.
    },
    { maxWait: 15_000, timeout: 20_000 },
  );
}

export async function leaveRoom(db: PrismaClient, userId: string, slug: string): Promise<boolean> {
  const room = await roomBySlug(db, slug);
  if (!room) throw new ServiceError('NOT_FOUND', `No room ${slug}`);
  const { count } = await db.roomMember.deleteMany({ where: { roomId: room.id, userId } });
  if (count > 0) await touch(db, room.id);
  return count > 0;
}

export async function roomMembers(db: PrismaClient, slug: string) {
  const room = await roomBySlug(db, slug);
  if (!room) throw new ServiceError('NOT_FOUND', `No room ${slug}`);
  const members = await db.roomMember.findMany({
    where: { roomId: room.id },
    orderBy: { joinedAt: 'asc' },
    take: 500,
    select: { role: true, joinedAt: true, user: { select: { id: true, displayName: true } } },
  });
  return {
    room,
    members: members.map((m) => ({
      userId: m.user.id,
      displayName: m.user.displayName,
      role: m.role,
      joinedAt: m.joinedAt,
    })),
  };
}
