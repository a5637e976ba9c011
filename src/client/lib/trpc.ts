// The app's tRPC clients: React hooks (`api`, with TanStack Query) for screens, and a plain client (`trpc`) for
// imperative flows. Subscriptions (chat.stream) go over SSE with the browser's EventSource, the rest batched;
// same origin, so the session cookie rides along and no CORS is involved.
import { TRPCClientError, createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { createTRPCReact } from '@trpc/react-query';
import type { AppRouter } from '../../server/trpc/root.ts';
import { refusalLinks } from '../../shared/trpc-links.ts';

/** The app's links; `url` is the API's address (same origin in the app; a full URL elsewhere). */
export function appLinks(url = '/api/trpc') {
  return [
    ...refusalLinks<AppRouter>(),
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: httpSubscriptionLink({ url }),
      // The server refuses batches past TRPC_MAX_BATCH_SIZE (default 10); a longer batch is split.
      false: httpBatchLink({ url, maxItems: 10 }),
    }),
  ];
}

export const trpc = createTRPCClient<AppRouter>({ links: appLinks() });
export const api = createTRPCReact<AppRouter>();
export const apiClient = api.createClient({ links: appLinks() });

/**
 * TanStack Query's `retry` for what a screen needs from the server (the providers, who is signed in): a dropped
 * connection or a busy server (429, 5xx) is asked again, twice, with its backoff; a refusal (any other 4xx) is final.
 */
export function retryTransient(failures: number, error: unknown): boolean {
  const status =
    error instanceof TRPCClientError ? (error.data as { httpStatus?: number } | undefined)?.httpStatus : undefined;
  const refused = status !== undefined && status >= 400 && status < 500 && status !== 429;
  return failures < 2 && !refused;
}
