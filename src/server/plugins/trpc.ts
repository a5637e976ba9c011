import { type FastifyTRPCPluginOptions, fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import fp from 'fastify-plugin';
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
        onError({ path, error, type }) {
          // Expected failures (bad input, not found, unauthorized) are the client's business; log the rest
          // with the original error, which the response never shows.
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
