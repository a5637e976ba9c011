// Words for a failed answer: the server's own message, said in local time where a daily budget is spent.
import { TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../../../server/trpc/root.ts';
import type { ProviderErrorData } from '../../../shared/schemas/chat.ts';

function providerError(cause: unknown): ProviderErrorData | null {
  return cause instanceof TRPCClientError ? ((cause as TRPCClientError<AppRouter>).data?.providerError ?? null) : null;
}

export function chatErrorText(cause: unknown): string {
  const message = cause instanceof Error ? cause.message : String(cause);
  const failure = providerError(cause);
  if (!failure?.resetsAt) return message;
  const at = new Date(failure.resetsAt).toLocaleString(undefined, {
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
  });
  const rest = 'until then, answer on this device or with a peer in your room';
  switch (failure.code) {
    case 'USER_BUDGET_SPENT':
      return `You have used today's cloud tokens on this server. They come back ${at} (your time); ${rest}.`;
    case 'SERVER_BUDGET_SPENT':
      return `This server has used today's cloud tokens for everyone. They come back ${at} (your time); ${rest}.`;
    default:
      return message;
  }
}
