// Cloud chat through the server: chat.providers, chat.stream (subscription over SSE) and chat.send (whole
// answer). Neither saves a conversation: chat.stream is a GET, which a cross-site page can make a browser send
// (docs/SECURITY.md), so accounts save a finished turn with the conversation.append mutation instead. What both
// do record is the provider tokens spent, against the daily budgets checked before each chat.
import { type TRPC_ERROR_CODE_KEY, TRPCError } from '@trpc/server';
import type { z } from 'zod';
import {
  type ChatAnswer,
  ChatInputSchema,
  type ChatStreamEvent,
  type ProviderErrorCode,
} from '../../../shared/schemas/chat.ts';
import { ProviderError, providerInfo } from '../../providers/index.ts';
import { runChat } from '../../services/chat.ts';
import type { ValidSession } from '../../services/session.ts';
import type { Context } from '../context.ts';
import { authedProcedure, costly, publicProcedure, router } from '../init.ts';

/** Every chat, the free stub's included, spends the per-user and per-IP chat budget (CHATS_PER_USER_PER_MINUTE). */
const chatProcedure = authedProcedure.use(costly('chat'));

type ChatContext = Context & { session: ValidSession };
type ParsedChatInput = z.output<typeof ChatInputSchema>;

// No 5xx codes: tRPC's SSE link takes those as transient and reconnects, which would silently send the prompt
// to the provider again (and again). The precise cause travels in error.data.providerError.
const TRPC_CODE: Record<ProviderErrorCode, TRPC_ERROR_CODE_KEY> = {
  PROVIDER_NOT_CONFIGURED: 'PRECONDITION_FAILED',
  INVALID_KEY: 'PRECONDITION_FAILED',
  RATE_LIMITED: 'TOO_MANY_REQUESTS',
  MODEL_NOT_FOUND: 'NOT_FOUND',
  UPSTREAM_REJECTED: 'UNPROCESSABLE_CONTENT',
  UPSTREAM_TIMEOUT: 'TIMEOUT',
  UPSTREAM_ERROR: 'PRECONDITION_FAILED',
  BAD_UPSTREAM_RESPONSE: 'PRECONDITION_FAILED',
  TOO_MANY_STREAMS: 'TOO_MANY_REQUESTS',
  ACCOUNT_REQUIRED: 'FORBIDDEN',
  MODEL_NOT_ALLOWED: 'FORBIDDEN',
  SERVER_BUSY: 'TOO_MANY_REQUESTS',
  USER_BUDGET_SPENT: 'TOO_MANY_REQUESTS',
  SERVER_BUDGET_SPENT: 'TOO_MANY_REQUESTS',
};

function toTRPCError(error: ProviderError): TRPCError {
  return new TRPCError({ code: TRPC_CODE[error.code], message: error.message, cause: error });
}

/** One signal for "stop": the exchange ended (see Context.exchangeEnded) or tRPC ended the call. */
function stopSignal(ctx: ChatContext, trpcSignal: AbortSignal | undefined): { signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const onStop = () => stop.abort();
  const sources = [ctx.exchangeEnded, trpcSignal].filter((source) => source !== undefined);
  for (const source of sources) {
    if (source.aborted) stop.abort();
    else source.addEventListener('abort', onStop, { once: true });
  }
  return {
    signal: stop.signal,
    dispose: () => sources.forEach((source) => source.removeEventListener('abort', onStop)),
  };
}

/** The chat (src/server/services/chat.ts) as tRPC sees it: stopped with the exchange, failures as TRPCErrors. */
async function* runTrpcChat(
  ctx: ChatContext,
  input: ParsedChatInput,
  trpcSignal: AbortSignal | undefined,
): AsyncGenerator<ChatStreamEvent> {
  const { signal, dispose } = stopSignal(ctx, trpcSignal);
  try {
    yield* runChat(
      { env: ctx.env, chat: ctx.chat, db: ctx.db, log: ctx.req.log },
      { userId: ctx.session.userId, account: ctx.session.user.kind === 'ACCOUNT' },
      input,
      signal,
    );
  } catch (error) {
    throw error instanceof ProviderError ? toTRPCError(error) : error;
  } finally {
    dispose();
  }
}

export const chatRouter = router({
  /** Every provider with whether this server has its key and whether guests may use it; never the key or where it points. */
  providers: publicProcedure.query(({ ctx }) =>
    Object.values(ctx.chat.providers).map((provider) => providerInfo(provider, ctx.env)),
  ),

  /** The answer as it is made. Closing the subscription (or the tab) aborts the provider's request. */
  stream: chatProcedure.input(ChatInputSchema).subscription(async function* ({ ctx, input, signal }) {
    yield* runTrpcChat(ctx, input, signal);
  }),

  /** The whole answer at once; the provider is still streamed, so its timeouts apply the same way. */
  send: chatProcedure.input(ChatInputSchema).mutation(async ({ ctx, input, signal }): Promise<ChatAnswer> => {
    let text = '';
    for await (const event of runTrpcChat(ctx, input, signal)) {
      if (event.type === 'delta') text += event.text;
      else {
        const { type: _type, ...done } = event;
        return { text, ...done };
      }
    }
    throw new Error('The chat ended without its done event');
  }),
});
