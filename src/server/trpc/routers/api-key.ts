// Keys for the OpenAI-compatible API (/v1): accounts only; the key is shown once, by create.
import { TRPCError } from '@trpc/server';
import { ApiKeyCreateSchema, ApiKeyRefSchema } from '../../../shared/schemas/api-key.ts';
import { ApiKeyError, createApiKey, listApiKeys, revokeApiKey } from '../../services/api-keys.ts';
import { accountProcedure, router } from '../init.ts';

const accountOnly = accountProcedure('API keys need an account: sign up to make one');

function toTRPCError(error: unknown): unknown {
  if (!(error instanceof ApiKeyError)) return error;
  return new TRPCError({ code: error.code === 'NOT_FOUND' ? 'NOT_FOUND' : 'FORBIDDEN', message: error.message });
}

export const apiKeyRouter = router({
  /** The new key, in full, this once: only its hash is stored. */
  create: accountOnly.input(ApiKeyCreateSchema).mutation(async ({ ctx, input }) => {
    try {
      return await createApiKey(ctx.db, ctx.session.userId, input.name);
    } catch (error) {
      throw toTRPCError(error);
    }
  }),
  list: accountOnly.query(({ ctx }) => listApiKeys(ctx.db, ctx.session.userId)),
  revoke: accountOnly.input(ApiKeyRefSchema).mutation(async ({ ctx, input }) => {
    try {
      return await revokeApiKey(ctx.db, ctx.session.userId, input.id);
    } catch (error) {
      throw toTRPCError(error);
    }
  }),
});
