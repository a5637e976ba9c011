import { checkHealth } from '../../services/health.ts';
import { publicProcedure } from '../init.ts';

/** Database reachable, uptime, version and commit: the same report as `GET /api/health`. */
export const healthQuery = publicProcedure.query(({ ctx }) => checkHealth(ctx.database, ctx.build));
