import { router } from './init.ts';
import { authRouter } from './routers/auth.ts';
import { healthQuery } from './routers/health.ts';

export const appRouter = router({
  health: healthQuery,
  auth: authRouter,
});

export type AppRouter = typeof appRouter;
