// Daily provider-token budgets (CHAT_DAILY_TOKENS_PER_USER, CHAT_DAILY_TOKENS): the UTC day they count in, the
// refusal once one is spent, and what a finished or abandoned chat costs. Storage is services/token-usage.ts.
import type { ChatUsage } from '../../shared/schemas/chat.ts';
import type { Env } from '../env.ts';
import { ProviderError } from './provider.ts';

/** The UTC day `now` falls in, as the DATE TokenUsage stores (`2026-12-03`). */
export function utcDay(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/** The next 00:00 UTC, when every daily budget starts again. */
export function nextReset(now: Date): Date {
  const reset = new Date(now);
  reset.setUTCHours(24, 0, 0, 0);
  return reset;
}

export interface Spent {
  user: number;
  server: number;
}

type BudgetEnv = Pick<Env, 'CHAT_DAILY_TOKENS_PER_USER' | 'CHAT_DAILY_TOKENS'>;

/** Checked before a chat starts: a chat already running finishes, so a budget can be passed by what is in flight. */
export function budgetRefusal(spent: Spent, env: BudgetEnv, now: Date): ProviderError | null {
  const resetsAt = nextReset(now);
  const options = { resetsAt, retryAfterSeconds: Math.ceil((resetsAt.getTime() - now.getTime()) / 1000) };
  const when = `it starts again at 00:00 UTC (${resetsAt.toISOString()})`;
  if (spent.user >= env.CHAT_DAILY_TOKENS_PER_USER) {
    return new ProviderError(
      'USER_BUDGET_SPENT',
      `You have used today's ${env.CHAT_DAILY_TOKENS_PER_USER} cloud tokens; ${when}`,
      options,
    );
  }
  if (spent.server >= env.CHAT_DAILY_TOKENS) {
    return new ProviderError(
      'SERVER_BUDGET_SPENT',
      `This server has used today's cloud token budget; ${when}`,
      options,
    );
  }
  return null;
}

/** A common rule of thumb for English text; used only when the provider reports no usage. */
const CHARS_PER_TOKEN = 4;

export function estimateTokens(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN);
}

export interface ChatSpend {
  /** What the provider reported, when it got that far. */
  usage: ChatUsage | null;
  promptChars: number;
  /** Text streamed before the end, the client leaving, or a failure. */
  answerChars: number;
  /** The provider failed: refused, errored or timed out. */
  providerFailed: boolean;
}

/**
 * Tokens to charge: the provider's own count, else an estimate of the prompt and the text streamed. A client that
 * leaves early still pays for its prompt (the provider read it); a provider that failed before any text is free.
 */
export function chargedTokens(spend: ChatSpend): number {
  if (spend.usage) return spend.usage.promptTokens + spend.usage.completionTokens;
  if (spend.providerFailed && spend.answerChars === 0) return 0;
  return estimateTokens(spend.promptChars + spend.answerChars);
}
