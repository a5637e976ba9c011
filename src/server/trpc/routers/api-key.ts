// Keys for the OpenAI-compatible API (/v1): accounts only; the key is shown once, by create.
import { ApiKeyCreateSchema, ApiKeyRefSchema } from '../../../shared/schemas/api-key.ts';
import { createApiKey, listApiKeys, revokeApiKey } from '../../services/api-keys.ts';
import { accountProcedure, router } from '../init.ts';

const accountOnly = accountProcedure('API keys need an account: sign up to make one');

export const apiKeyRouter = router({
  /** The new key, in full, this once: only its hash is stored. */
  create: accountOnly
    .input(ApiKeyCreateSchema)
    .mutation(({ ctx, input }) => createApiKey(ctx.db, ctx.session.userId, input.name)),
  list: accountOnly.query(({ ctx }) => listApiKeys(ctx.db, ctx.session.userId)),
  revoke: accountOnly
    .input(ApiKeyRefSchema)
    .mutation(({ ctx, input }) => revokeApiKey(ctx.db, ctx.session.userId, input.id)),
});
