// Room contracts (room.list, create, join, leave, members), shared by the server and the client.
import { z } from 'zod';
import { RoomSlugSchema } from '../socket-contract.ts';

export const ROOM_LIMITS = { minCapacity: 2, maxCapacity: 64, pageSize: 20, maxPageSize: 50 } as const;

export const RoomCreateSchema = z
  .object({
    name: z
      .string()
      .trim()
      .min(1, 'Room name cannot be empty')
      .max(64, 'Room name is at most 64 characters')
      .regex(/^[^\p{Cc}\p{Cf}]+$/u, 'Room name cannot contain control characters'),
    visibility: z.enum(['PUBLIC', 'PRIVATE']).default('PUBLIC'),
    capacity: z.number().int().min(ROOM_LIMITS.minCapacity).max(ROOM_LIMITS.maxCapacity).default(8),
  })
  .strict();

export const RoomJoinInputSchema = z
  .object({
    room: RoomSlugSchema,
    inviteCode: z
      .string()
      .regex(/^[A-Za-z0-9_-]{16,64}$/, 'Invalid invite code')
      .optional(),
  })
  .strict();
export const RoomRefSchema = z.object({ room: RoomSlugSchema }).strict();

/** room.list: the global room, then the others by recent activity; `cursor` is the last page's `nextCursor`. */
export const RoomListInputSchema = z
  .object({
    cursor: z
      .string()
      .max(64)
      .regex(/^\d{1,15}_[0-9a-f-]{36}$/, 'Invalid cursor')
      .nullish(),
    limit: z.number().int().min(1).max(ROOM_LIMITS.maxPageSize).default(ROOM_LIMITS.pageSize),
    // Sent by @trpc/react-query's useInfiniteQuery with every page; pages only go forward.
    direction: z.literal('forward').optional(),
  })
  .strict()
  // No input at all is the first page.
  .default({ limit: ROOM_LIMITS.pageSize });
