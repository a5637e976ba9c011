// Cloud chat through the server: chat.providers, chat.stream (subscription over SSE) and chat.send (whole
// answer). Neither saves a conversation: chat.stream is a GET, which a cross-site page can make a browser send
// (docs/SECURITY.md), so accounts save a finished turn with the conversation.append mutation instead. What both
// do record is the provider tokens spent, against the daily budgets checked before each chat.
import { type TRPC_ERROR_CODE_KEY, TRPCError } from '@trpc/server';
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import {
  type ChatAnswer,
  ChatInputSchema,
  type ChatStreamEvent,
  type ChatUsage,
  type ProviderErrorCode,
} from '../../../shared/schemas/chat.ts';
import { accessRefusal } from '../../providers/access.ts';
import { budgetRefusal, chargedTokens } from '../../providers/budget.ts';
import { type ProviderChunk, ProviderError, chatRuntime, providerInfo } from '../../providers/index.ts';
import type { ValidSession } from '../../services/session.ts';
import { recordTokens, spentToday } from '../../services/token-usage.ts';
import type { Context } from '../context.ts';
import { authedProcedure, costly, publicProcedure, router } from '../init.ts';

/** Every chat, the free stub's included, spends the per-user and per-IP chat budget (CHATS_PER_USER_PER_MINUTE). */
const chatProcedure = authedProcedure.use(costly('chat'));

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
  return { signal: stop.signal, dispose: () => sources.forEach((source) => source.removeEventListener('abort', onStop)) };
}

/** Everything that refuses a chat, in order, before any upstream request; the slot it holds when admitted. */
async function admit(ctx: ChatContext, input: ParsedChatInput, model: string): Promise<() => void> {
  const { providers, slots } = chatRuntime(ctx.env);
  const provider = providers[input.provider];
  const { userId } = ctx.session;
  const refusal = accessRefusal({ provider, model, account: ctx.session.user.kind === 'ACCOUNT' }, ctx.env);
  if (refusal) throw refusal;
  if (!provider.stub) {
    const now = new Date();
    const overBudget = budgetRefusal(await spentToday(ctx.db, userId, now), ctx.env, now);
    if (overBudget) throw overBudget;
  }
  const slot = slots.acquire(userId);
  if (slot.ok) return slot.release;
  if (slot.refused === 'user') {
    throw new ProviderError('TOO_MANY_STREAMS', `At most ${ctx.env.CHAT_MAX_STREAMS_PER_USER} chats can run at once; wait for one to finish`);
  }
  throw new ProviderError('SERVER_BUSY', `This server is running as many cloud chats as it can (${ctx.env.CHAT_MAX_STREAMS}); try again in a moment`);
}

/** Counts what a chat spent against today's budgets; the stub is free. Never fails the chat it follows. */
async function charge(ctx: ChatContext, tokens: number): Promise<void> {
  try {
    await recordTokens(ctx.db, ctx.session.userId, tokens, new Date());
  } catch (error) {
    ctx.req.log.error({ err: error }, 'could not record provider token usage');
  }
}

/** The one chat loop behind both procedures: text as it comes, then `done`. */
async function* runChat(ctx: ChatContext, input: ParsedChatInput, trpcSignal: AbortSignal | undefined): AsyncGenerator<ChatStreamEvent> {
  const started = performance.now();
  const provider = chatRuntime(ctx.env).providers[input.provider];
  const model = input.model ?? provider.defaultModel;
  let release: () => void;
  try {
    release = await admit(ctx, input, model);
  } catch (error) {
    throw error instanceof ProviderError ? toTRPCError(error) : error;
  }
  const { signal, dispose } = stopSignal(ctx, trpcSignal);
  let text = '';
  let usage: ChatUsage | null = null;
  let providerFailed = false;
  try {
    let firstAt: number | null = null;
    let lastAt = started;
    let finish: Finish = { type: 'finish', finishReason: 'stop', model, usage: null };
    for await (const chunk of provider.stream({ model, messages: input.messages, sampling: input.sampling }, signal)) {
      if (chunk.type === 'finish') {
        finish = chunk;
        usage = chunk.usage;
        continue;
      }
      lastAt = performance.now();
      firstAt ??= lastAt;
      text += chunk.text;
      yield { type: 'delta', text: chunk.text };
    }
    const completion = finish.usage?.completionTokens ?? 0;
    const decodeMs = firstAt === null ? 0 : lastAt - firstAt;
    yield {
      type: 'done',
      finishReason: finish.finishReason,
      model: finish.model,
      usage: finish.usage,
      timings: {
        ttftMs: firstAt === null ? null : Math.round(firstAt - started),
        totalMs: Math.round(performance.now() - started),
        // Decode speed: tokens after the first, over the time after the first.
        tokensPerSecond: completion > 1 && decodeMs > 0 ? ((completion - 1) * 1000) / decodeMs : null,
      },
    };
  } catch (error) {
    if (!(error instanceof ProviderError)) throw error;
    providerFailed = true;
    throw toTRPCError(error);
  } finally {
    dispose();
    release();
    // Also when the client left mid-answer: what was streamed (and the prompt the provider read) was paid for.
    if (!provider.stub) {
      const promptChars = input.messages.reduce((sum, message) => sum + message.content.length, 0);
      await charge(ctx, chargedTokens({ usage, promptChars, answerChars: text.length, providerFailed }));
    }
  }
}

export const chatRouter = router({
  /** Every provider with whether this server has its key and whether guests may use it; never the key or where it points. */
  providers: publicProcedure.query(({ ctx }) => Object.values(chatRuntime(ctx.env).providers).map((provider) => providerInfo(provider, ctx.env))),

  /** The answer as it is made. Closing the subscription (or the tab) aborts the provider's request. */
  stream: chatProcedure.input(ChatInputSchema).subscription(async function* ({ ctx, input, signal }) {
    yield* runChat(ctx, input, signal);
  }),

  /** The whole answer at once; the provider is still streamed, so its timeouts apply the same way. */
  send: chatProcedure.input(ChatInputSchema).mutation(async ({ ctx, input, signal }): Promise<ChatAnswer> => {
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
