// The app's tRPC client: subscriptions (chat.stream) over SSE with the browser's EventSource, the rest batched.
// Same origin, so the session cookie rides along and no CORS is involved.
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import type { AppRouter } from '../../server/trpc/root.ts';

const url = '/api/trpc';

export const trpc = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: httpSubscriptionLink({ url }),
      false: httpBatchLink({ url }),
    }),
  ],
});
