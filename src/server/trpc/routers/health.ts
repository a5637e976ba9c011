import { checkHealth } from '../../services/health.ts';
import { publicProcedure } from '../init.ts';

/** Every dependency's state, uptime, version and commit: the same report as `GET /api/health`. */
export const healthQuery = publicProcedure.query(({ ctx }) =>
  checkHealth(ctx.dependencies, ctx.database.kind, ctx.build),
);
