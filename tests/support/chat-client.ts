// The real tRPC client as the app uses it: subscriptions over SSE (httpSubscriptionLink), the rest batched.
// Node 20 has no global EventSource: the `eventsource` package stands in, sending the session cookie.
import { TRPCClientError, createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import type { ChatInput, ChatStreamEvent } from '../../src/shared/schemas/chat.ts';
import type { AppRouter } from '../../src/server/trpc/root.ts';

export function chatClient(base: string, cookie: string) {
  const url = `${base}/api/trpc`;
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url,
          EventSource,
          eventSourceOptions: {
            fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, cookie } }),
          },
        }),
        false: httpBatchLink({ url, headers: { cookie } }),
      }),
    ],
  });
}

export type ChatClient = ReturnType<typeof chatClient>;
export type ChatDoneEvent = Extract<ChatStreamEvent, { type: 'done' }>;

export interface StreamOutcome {
  deltas: string[];
  done: ChatDoneEvent | null;
  error: TRPCClientError<AppRouter> | null;
}

export interface RunningStream {
  deltas: string[];
  /** Resolves when the stream completes or fails (never rejects). */
  outcome: Promise<StreamOutcome>;
  /** Resolves on the first text delta. */
  firstDelta: Promise<void>;
  unsubscribe(): void;
}

/** Subscribes to chat.stream and gathers what arrives. */
export function openStream(client: ChatClient, input: ChatInput, timeoutMs = 15_000): RunningStream {
  const deltas: string[] = [];
  let done: ChatDoneEvent | null = null;
  let onFirst = () => {};
  const firstDelta = new Promise<void>((resolve) => (onFirst = resolve));
  let subscription: { unsubscribe(): void } | undefined;
  const outcome = new Promise<StreamOutcome>((resolve) => {
    const timer = setTimeout(() => {
      subscription?.unsubscribe();
      resolve({ deltas, done, error: new TRPCClientError(`no end to the stream within ${timeoutMs} ms`) });
    }, timeoutMs);
    const finish = (error: TRPCClientError<AppRouter> | null) => {
      clearTimeout(timer);
      resolve({ deltas, done, error });
    };
    subscription = client.chat.stream.subscribe(input, {
      onData(event) {
        if (event.type === 'delta') {
          deltas.push(event.text);
          onFirst();
        } else done = event;
      },
      onError: (error) => finish(error),
      onComplete: () => finish(null),
    });
  });
  return { deltas, outcome, firstDelta, unsubscribe: () => subscription?.unsubscribe() };
}

export function streamChat(client: ChatClient, input: ChatInput): Promise<StreamOutcome> {
  return openStream(client, input).outcome;
}
