// Cloud chat through the server: chat.providers, chat.stream (subscription over SSE) and chat.send (whole
// answer). Accounts' conversations are saved; guests keep theirs on the device, so nothing is stored for them.
import { type TRPC_ERROR_CODE_KEY, TRPCError } from '@trpc/server';
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import {
  type ChatAnswer,
  ChatInputSchema,
  type ChatStreamEvent,
  type ProviderErrorCode,
} from '../../../shared/schemas/chat.ts';
import { type ProviderChunk, ProviderError, chatRuntime, providerInfo } from '../../providers/index.ts';
import { appendTurn } from '../../services/conversation.ts';
import type { ValidSession } from '../../services/session.ts';
import type { Context } from '../context.ts';
import { authedProcedure, publicProcedure, router } from '../init.ts';

type ChatContext = Context & { session: ValidSession };
type ParsedChatInput = z.output<typeof ChatInputSchema>;
type Finish = Extract<ProviderChunk, { type: 'finish' }>;

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
};

function toTRPCError(error: ProviderError): TRPCError {
  return new TRPCError({ code: TRPC_CODE[error.code], message: error.message, cause: error });
}

async function assertOwnConversation(ctx: ChatContext, id: string): Promise<void> {
  const found = await ctx.db.conversation.findFirst({ where: { id, userId: ctx.session.userId }, select: { id: true } });
  if (!found) throw new TRPCError({ code: 'NOT_FOUND', message: 'No such conversation among yours' });
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
  return { signal: stop.signal, dispose: () => sources.forEach((source) => source.removeEventListener('abort', onStop)) };
}

/** The one chat loop behind both procedures: text as it comes, then `done`. */
async function* runChat(ctx: ChatContext, input: ParsedChatInput, trpcSignal: AbortSignal | undefined): AsyncGenerator<ChatStreamEvent> {
  const started = performance.now();
  const { providers, slots } = chatRuntime(ctx.env);
  const provider = providers[input.provider];
  const saving = ctx.session.user.kind === 'ACCOUNT';
  if (saving && input.conversationId) await assertOwnConversation(ctx, input.conversationId);

  const release = slots.acquire(ctx.session.userId);
  if (!release) {
    throw toTRPCError(
      new ProviderError('TOO_MANY_STREAMS', `At most ${ctx.env.CHAT_MAX_STREAMS_PER_USER} chats can run at once; wait for one to finish`),
    );
  }
  const { signal, dispose } = stopSignal(ctx, trpcSignal);
  try {
    const model = input.model ?? provider.defaultModel;
    let text = '';
    let firstAt: number | null = null;
    let lastAt = started;
    let finish: Finish = { type: 'finish', finishReason: 'stop', model, usage: null };
    for await (const chunk of provider.stream({ model, messages: input.messages, sampling: input.sampling }, signal)) {
      if (chunk.type === 'finish') {
        finish = chunk;
        continue;
      }
      lastAt = performance.now();
      firstAt ??= lastAt;
      text += chunk.text;
      yield { type: 'delta', text: chunk.text };
    }
    const completion = finish.usage?.completionTokens ?? 0;
    const decodeMs = firstAt === null ? 0 : lastAt - firstAt;
    const answer: ChatAnswer = {
      text,
      finishReason: finish.finishReason,
      model: finish.model,
      usage: finish.usage,
      timings: {
        ttftMs: firstAt === null ? null : Math.round(firstAt - started),
        totalMs: Math.round(performance.now() - started),
        // Decode speed: tokens after the first, over the time after the first.
        tokensPerSecond: completion > 1 && decodeMs > 0 ? ((completion - 1) * 1000) / decodeMs : null,
      },
      conversationId: null,
    };
    // Only finished answers are stored.
    if (saving) {
      answer.conversationId = await appendTurn(ctx.db, ctx.session.userId, {
        conversationId: input.conversationId,
        messages: input.messages,
        answer: {
          content: answer.text,
          route: 'CLOUD',
          provider: provider.id,
          modelId: answer.model.slice(0, 128),
          tokensOut: answer.usage?.completionTokens,
          ttftMs: answer.timings.ttftMs ?? undefined,
          tokensPerSecond: answer.timings.tokensPerSecond ?? undefined,
        },
      });
    }
    const { text: _text, ...done } = answer;
    yield { type: 'done', ...done };
  } catch (error) {
    throw error instanceof ProviderError ? toTRPCError(error) : error;
  } finally {
    dispose();
    release();
  }
}

export const chatRouter = router({
  /** Every provider with whether this server has its key; never the key or where it points. */
  providers: publicProcedure.query(({ ctx }) => Object.values(chatRuntime(ctx.env).providers).map(providerInfo)),

  /** The answer as it is made. Closing the subscription (or the tab) aborts the provider's request. */
  stream: authedProcedure.input(ChatInputSchema).subscription(async function* ({ ctx, input, signal }) {
    yield* runChat(ctx, input, signal);
  }),

  /** The whole answer at once; the provider is still streamed, so its timeouts apply the same way. */
  send: authedProcedure.input(ChatInputSchema).mutation(async ({ ctx, input, signal }): Promise<ChatAnswer> => {
    let text = '';
    for await (const event of runChat(ctx, input, signal)) {
      if (event.type === 'delta') text += event.text;
      else {
        const { type: _type, ...done } = event;
        return { text, ...done };
      }
    }
    throw new Error('The chat ended without its done event');
  }),
});
