// One cloud chat, whoever asked for it (tRPC's chat.stream and chat.send, the OpenAI-compatible /v1 API): who may
// run it and on whose budgets, the provider's stream, and what it cost. Refusals and failures are ProviderErrors;
// each edge maps them to its own wire (TRPCError, OpenAI's error shape).
import type { FastifyBaseLogger } from 'fastify';
import { performance } from 'node:perf_hooks';
import type {
  ChatMessage,
  ChatProviderId,
  ChatSampling,
  ChatStreamEvent,
  ChatUsage,
} from '../../shared/schemas/chat.ts';
import type { PrismaClient } from '../db/client.ts';
import type { Env } from '../env.ts';
import { accessRefusal } from '../providers/access.ts';
import { budgetRefusal, chargedTokens } from '../providers/budget.ts';
import { type ChatRuntime, type ProviderChunk, ProviderError } from '../providers/index.ts';
import { recordTokens, spentToday } from './token-usage.ts';

export interface ChatDeps {
  env: Env;
  /** The app's providers and stream slots (built once in buildApp). */
  chat: ChatRuntime;
  db: PrismaClient;
  log: FastifyBaseLogger;
}

export interface ChatCaller {
  userId: string;
  /** An account, not a guest (guests reach only the providers open to them). */
  account: boolean;
}

export interface ChatRequest {
  provider: ChatProviderId;
  /** The provider's default when absent. */
  model?: string | undefined;
  messages: ChatMessage[];
  sampling: ChatSampling;
}

type Finish = Extract<ProviderChunk, { type: 'finish' }>;

/** Everything that refuses a chat, in order, before any upstream request; the slot it holds when admitted. */
async function admit(
  deps: ChatDeps,
  caller: ChatCaller,
  providerId: ChatProviderId,
  model: string,
): Promise<() => void> {
  const { providers, slots } = deps.chat;
  const provider = providers[providerId];
  const refusal = accessRefusal({ provider, model, account: caller.account }, deps.env);
  if (refusal) throw refusal;
  if (!provider.stub) {
    const now = new Date();
    const overBudget = budgetRefusal(await spentToday(deps.db, caller.userId, now), deps.env, now);
    if (overBudget) throw overBudget;
  }
  const slot = slots.acquire(caller.userId);
  if (slot.ok) return slot.release;
  if (slot.refused === 'user') {
    throw new ProviderError(
      'TOO_MANY_STREAMS',
      `At most ${deps.env.CHAT_MAX_STREAMS_PER_USER} chats can run at once; wait for one to finish`,
    );
  }
  throw new ProviderError(
    'SERVER_BUSY',
    `This server is running as many cloud chats as it can (${deps.env.CHAT_MAX_STREAMS}); try again in a moment`,
  );
}

/** Counts what a chat spent against today's budgets. Never fails the chat it follows. */
async function charge(deps: ChatDeps, userId: string, tokens: number): Promise<void> {
  try {
    await recordTokens(deps.db, userId, tokens, new Date());
  } catch (error) {
    deps.log.error({ err: error }, 'could not record provider token usage');
  }
}

/**
 * The one chat loop: text as it comes, then `done`. Aborting `signal` (the client went away) aborts the provider's
 * request; the stub is free, every other provider's tokens are charged, also when the client left mid-answer.
 */
export async function* runChat(
  deps: ChatDeps,
  caller: ChatCaller,
  request: ChatRequest,
  signal: AbortSignal,
): AsyncGenerator<ChatStreamEvent> {
  const started = performance.now();
  const provider = deps.chat.providers[request.provider];
  const model = request.model ?? provider.defaultModel;
  const release = await admit(deps, caller, request.provider, model);
  let text = '';
  let usage: ChatUsage | null = null;
  let providerFailed = false;
  try {
    let firstAt: number | null = null;
    let lastAt = started;
    let finish: Finish = { type: 'finish', finishReason: 'stop', model, usage: null };
    for await (const chunk of provider.stream(
      { model, messages: request.messages, sampling: request.sampling },
      signal,
    )) {
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
    if (error instanceof ProviderError) providerFailed = true;
    throw error;
  } finally {
    release();
    // Also when the client left mid-answer: what was streamed (and the prompt the provider read) was paid for.
    if (!provider.stub) {
      const promptChars = request.messages.reduce((sum, message) => sum + message.content.length, 0);
      await charge(
        deps,
        caller.userId,
        chargedTokens({ usage, promptChars, answerChars: text.length, providerFailed }),
      );
    }
  }
}
