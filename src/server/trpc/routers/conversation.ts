// Accounts' conversations on the server. Guests' stay on their device: these procedures refuse them.
import { TRPCError } from '@trpc/server';
import { ConversationAppendSchema, ConversationRefSchema } from '../../../shared/schemas/conversation.ts';
import { appendTurn, conversationById, listConversations } from '../../services/conversation.ts';
import { accountProcedure, router } from '../init.ts';

const accountOnly = accountProcedure('Guests keep their conversations on their device; sign up to keep them on the server');

export const conversationRouter = router({
  list: accountOnly.query(({ ctx }) => listConversations(ctx.db, ctx.session.userId)),
  byId: accountOnly.input(ConversationRefSchema).query(({ ctx, input }) => conversationById(ctx.db, ctx.session.userId, input.id)),
  /** A finished turn of a chat that ran on the device or the mesh (cloud answers are saved by chat.stream). */
  append: accountOnly.input(ConversationAppendSchema).mutation(async ({ ctx, input }) => ({ id: await appendTurn(ctx.db, ctx.session.userId, input) })),
  remove: accountOnly.input(ConversationRefSchema).mutation(async ({ ctx, input }) => {
    const { count } = await ctx.db.conversation.deleteMany({ where: { id: input.id, userId: ctx.session.userId } });
    if (count === 0) throw new TRPCError({ code: 'NOT_FOUND', message: 'No such conversation among yours' });
    return { removed: true };
  }),
});
