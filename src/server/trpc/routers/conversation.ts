// Accounts' conversations on the server. Guests' stay on their device: these procedures refuse them.
import { TRPCError } from '@trpc/server';
import {
  ConversationAppendSchema,
  ConversationListSchema,
  ConversationRefSchema,
  ConversationRenameSchema,
} from '../../../shared/schemas/conversation.ts';
import { appendTurn, conversationById, listConversations, renameConversation } from '../../services/conversation.ts';
import { accountProcedure, router } from '../init.ts';

const accountOnly = accountProcedure(
  'Guests keep their conversations on their device; sign up to keep them on the server',
);

export const conversationRouter = router({
  list: accountOnly
    .input(ConversationListSchema)
    .query(({ ctx, input }) => listConversations(ctx.db, ctx.session.userId, input?.query)),
  rename: accountOnly.input(ConversationRenameSchema).mutation(async ({ ctx, input }) => {
    await renameConversation(ctx.db, ctx.session.userId, input.id, input.title);
    return { renamed: true };
  }),
  byId: accountOnly
    .input(ConversationRefSchema)
    .query(({ ctx, input }) => conversationById(ctx.db, ctx.session.userId, input.id)),
  /** A finished (or stopped) turn, whichever route answered it: the device, the mesh or a cloud provider. */
  append: accountOnly.input(ConversationAppendSchema).mutation(async ({ ctx, input }) => ({
    id: await appendTurn(ctx.db, ctx.session.userId, input, { maxBytes: ctx.env.CONVERSATION_MAX_BYTES_PER_USER }),
  })),
  remove: accountOnly.input(ConversationRefSchema).mutation(async ({ ctx, input }) => {
    const { count } = await ctx.db.conversation.deleteMany({ where: { id: input.id, userId: ctx.session.userId } });
    if (count === 0) throw new TRPCError({ code: 'NOT_FOUND', message: 'No such conversation among yours' });
    return { removed: true };
  }),
});
