import { router } from './init.ts';
import { authRouter } from './routers/auth.ts';
import { healthQuery } from './routers/health.ts';
import { manifestRouter, modelRouter } from './routers/model.ts';

export const appRouter = router({
  health: healthQuery,
  auth: authRouter,
  manifest: manifestRouter,
  models: modelRouter,
});

export type AppRouter = typeof appRouter;
