// Rooms: the global room is open to everyone; custom rooms (create, join, leave) need an account.
import { TRPCError } from '@trpc/server';
import {
  RoomCreateSchema,
  RoomJoinInputSchema,
  RoomListInputSchema,
  RoomRefSchema,
} from '../../../shared/schemas/room.ts';
import {
  GLOBAL_ROOM,
  createRoom,
  isMember,
  joinRoom,
  leaveRoom,
  listRooms,
  roomBySlug,
  roomMembers,
} from '../../services/room.ts';
import { accountProcedure, authedProcedure, costly, publicProcedure, router } from '../init.ts';

const accountOnly = accountProcedure('Custom rooms need an account: sign up to create or join one');

export const roomRouter = router({
  /** STUN/TURN servers for WebRTC (ICE_SERVERS); empty on a LAN or loopback. */
  iceServers: publicProcedure.query(({ ctx }) => ctx.env.ICE_SERVERS),
  list: authedProcedure
    .input(RoomListInputSchema)
    .query(({ ctx, input }) => listRooms(ctx.db, ctx.session.userId, input)),
  create: accountOnly
    .use(costly('roomCreate'))
    .input(RoomCreateSchema)
    .mutation(({ ctx, input }) =>
      createRoom(ctx.db, ctx.session.userId, input, { maxOwned: ctx.env.ROOMS_PER_ACCOUNT }),
    ),
  join: accountOnly.input(RoomJoinInputSchema).mutation(async ({ ctx, input }) => {
    const room = await joinRoom(ctx.db, ctx.session.userId, input.room, input.inviteCode);
    return { slug: room.slug, name: room.name };
  }),
  leave: accountOnly.input(RoomRefSchema).mutation(async ({ ctx, input }) => {
    if (input.room === GLOBAL_ROOM)
      throw new TRPCError({ code: 'BAD_REQUEST', message: 'The global room has no membership to leave' });
    return { left: await leaveRoom(ctx.db, ctx.session.userId, input.room) };
  }),
  /** Members of a room you can see: public rooms, or private rooms you belong to. */
  members: authedProcedure.input(RoomRefSchema).query(async ({ ctx, input }) => {
    const room = await roomBySlug(ctx.db, input.room);
    if (!room || (room.visibility === 'PRIVATE' && !(await isMember(ctx.db, room.id, ctx.session.userId)))) {
      throw new TRPCError({ code: 'NOT_FOUND', message: `No room ${input.room} among those you can see` });
    }
    return roomMembers(ctx.db, input.room);
  }),
});
