import { type FastifyTRPCPluginOptions, fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import fp from 'fastify-plugin';
import { unavailability } from '../dependencies/dependency.ts';
import { type AppServices, makeCreateContext } from '../trpc/context.ts';
import { type AppRouter, appRouter } from '../trpc/root.ts';

export const TRPC_PREFIX = '/api/trpc';

export const trpcPlugin = fp<{ services: AppServices }>(
  async (app, { services }) => {
    await app.register(fastifyTRPCPlugin, {
      prefix: TRPC_PREFIX,
      trpcOptions: {
        router: appRouter,
        // Calls past this in one request are refused whole (each call is also counted on its own).
        maxBatchSize: services.env.TRPC_MAX_BATCH_SIZE,
        createContext: makeCreateContext(services),
        // A call refused because a dependency is down says when to try again (the longest wait of a batch's calls).
        responseMeta({ errors }) {
          const waits = errors.map((error) => unavailability(error)?.retryAfterSeconds ?? 0);
          const wait = Math.max(0, ...waits);
          return wait > 0 ? { headers: { 'retry-after': String(wait) } } : {};
        },
        onError({ path, error, type }) {
          // Expected failures (bad input, not found, unauthorized) are the client's business; log the rest
          // with the original error, which the response never shows. A dependency that is down is logged once by
          // the dependencies plugin, not once per refused call.
          if (error.code === 'INTERNAL_SERVER_ERROR') {
            app.log.error({ err: error.cause ?? error, path, type }, 'tRPC procedure failed');
          } else {
            app.log.debug({ path, code: error.code }, error.message);
          }
        },
      } satisfies FastifyTRPCPluginOptions<AppRouter>['trpcOptions'],
    });
  },
  { name: 'trpc', dependencies: ['db'] },
);
