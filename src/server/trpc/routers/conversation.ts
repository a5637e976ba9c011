// Accounts' conversations on the server. Guests' stay on their device: these procedures refuse them.
import { TRPCError } from '@trpc/server';
import { ConversationAppendSchema, ConversationRefSchema } from '../../../shared/schemas/conversation.ts';
import { appendTurn, conversationById, listConversations } from '../../services/conversation.ts';
import { accountProcedure, router } from '../init.ts';

const accountOnly = accountProcedure(
  'Guests keep their conversations on their device; sign up to keep them on the server',
);

export const conversationRouter = router({
  list: accountOnly.query(({ ctx }) => listConversations(ctx.db, ctx.session.userId)),
  byId: accountOnly
    .input(ConversationRefSchema)
    .query(({ ctx, input }) => conversationById(ctx.db, ctx.session.userId, input.id)),
  /** A finished (or stopped) turn, whichever route answered it: the device, the mesh or a cloud provider. */
  append: accountOnly
    .input(ConversationAppendSchema)
    .mutation(async ({ ctx, input }) => ({
      id: await appendTurn(ctx.db, ctx.session.userId, input, { maxBytes: ctx.env.CONVERSATION_MAX_BYTES_PER_USER }),
    })),
  remove: accountOnly.input(ConversationRefSchema).mutation(async ({ ctx, input }) => {
    const { count } = await ctx.db.conversation.deleteMany({ where: { id: input.id, userId: ctx.session.userId } });
    if (count === 0) throw new TRPCError({ code: 'NOT_FOUND', message: 'No such conversation among yours' });
    return { removed: true };
  }),
});
