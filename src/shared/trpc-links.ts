// tRPC links every client of this server needs (the app and the headless peer): the server's refusals made before
// tRPC runs read as its own message, and a brief refusal (a burst over the smoothed budgets, or a query while a
// dependency blinks; docs/SECURITY.md, README's outage section) is waited out and retried instead of shown.
import { TRPCClientError, type TRPCLink, retryLink } from '@trpc/client';
import type { AnyRouter } from '@trpc/server';
import { observable } from '@trpc/server/observable';

/** Refusals that ask for at most this long a wait are waited out and retried (twice at most), not shown. */
const BRIEF_WAIT_MS = 2000;

/** How long a refusal (429, or 503 while a server's dependency is down) asks to wait (`Retry-After`), else null. */
export function retryAfterMs(error: TRPCClientError<AnyRouter>, statuses: readonly number[] = [429]): number | null {
  const response = (error.meta as { response?: Response } | undefined)?.response;
  if (response === undefined || !statuses.includes(response.status)) return null;
  const seconds = Number(response.headers.get('retry-after'));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : null;
}

/** The server's plain `{ error, message }` answer (not tRPC's envelope), when that is what came back. */
function plainMessage(error: TRPCClientError<AnyRouter>): string | null {
  if (error.data !== undefined) return null;
  const body = (error.meta as { responseJSON?: unknown } | undefined)?.responseJSON;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const message = (body as { message?: unknown }).message;
  return typeof message === 'string' ? message : null;
}

/**
 * Refusals made before tRPC runs (rate limits, the per-address queue, cross-site and size checks) answer in the
 * server's plain `{ error, message }` shape, which tRPC cannot read ("Unable to transform response from server"):
 * this gives the caller the server's own message instead.
 */
function readableRefusalLink<TRouter extends AnyRouter>(): TRPCLink<TRouter> {
  return () =>
    ({ next, op }) =>
      observable((observer) =>
        next(op).subscribe({
          next: (value) => observer.next(value),
          complete: () => observer.complete(),
          error: (error) => {
            const message = plainMessage(error);
            observer.error(
              message === null ? error : new TRPCClientError<TRouter>(message, { meta: error.meta, cause: error }),
            );
          },
        }),
      );
}

/** Put first in a client's links, before the terminating ones. */
export function refusalLinks<TRouter extends AnyRouter>(): TRPCLink<TRouter>[] {
  return [
    readableRefusalLink<TRouter>(),
    // A refused call did not run, so trying it again is safe for mutations too.
    retryLink<TRouter>({
      retry: ({ op, error, attempts }) => {
        // A 429 ran nothing, so any call may go again; a 503 may have come as a write landed (the database left
        // mid-commit), so only queries are asked again.
        const wait = op.type === 'subscription' ? null : retryAfterMs(error, op.type === 'query' ? [429, 503] : [429]);
        return attempts <= 2 && wait !== null && wait <= BRIEF_WAIT_MS;
      },
      // Retry-After has whole seconds, and so does the server's shortest refusal: wait one, spread a little.
      retryDelayMs: () => 1000 + Math.random() * 250,
    }),
  ];
}
