// Accounts' conversations on the server. Guests' stay on their device: these procedures refuse them.
import {
  ConversationAppendSchema,
  ConversationImportSchema,
  ConversationListSchema,
  ConversationMessageRefSchema,
  ConversationRefSchema,
  ConversationRenameSchema,
  ConversationSettingsSchema,
} from '../../../shared/schemas/conversation.ts';
import {
  appendTurn,
  conversationById,
  importConversation,
  listConversations,
  removeConversation,
  removeMessage,
  renameConversation,
  setConversationSettings,
  truncateConversation,
} from '../../services/conversation.ts';
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
  append: accountOnly
    .input(ConversationAppendSchema)
    .mutation(({ ctx, input }) =>
      appendTurn(ctx.db, ctx.session.userId, input, { maxBytes: ctx.env.CONVERSATION_MAX_BYTES_PER_USER }),
    ),
  /** A conversation (or its next part) moved in from a device: a guest's after signing up, or an imported file. */
  import: accountOnly
    .input(ConversationImportSchema)
    .mutation(({ ctx, input }) =>
      importConversation(ctx.db, ctx.session.userId, input, { maxBytes: ctx.env.CONVERSATION_MAX_BYTES_PER_USER }),
    ),
  settings: accountOnly.input(ConversationSettingsSchema).mutation(async ({ ctx, input }) => {
    await setConversationSettings(ctx.db, ctx.session.userId, input.id, input.settings);
    return { saved: true };
  }),
  /** Deletes a message and every later one: an edited question is answered anew from there. */
  truncate: accountOnly
    .input(ConversationMessageRefSchema)
    .mutation(({ ctx, input }) => truncateConversation(ctx.db, ctx.session.userId, input.id, input.messageId)),
  removeMessage: accountOnly.input(ConversationMessageRefSchema).mutation(async ({ ctx, input }) => {
    await removeMessage(ctx.db, ctx.session.userId, input.id, input.messageId);
    return { removed: true };
  }),
  remove: accountOnly.input(ConversationRefSchema).mutation(async ({ ctx, input }) => {
    await removeConversation(ctx.db, ctx.session.userId, input.id);
    return { removed: true };
  }),
});
