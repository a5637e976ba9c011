// The app's tRPC clients: React hooks (`api`, with TanStack Query) for screens, and a plain client (`trpc`) for
// imperative flows. Subscriptions (chat.stream) go over SSE with the browser's EventSource, the rest batched;
// same origin, so the session cookie rides along and no CORS is involved.
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
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
