// Mesh job records: the requester starts and finishes each job and reports spot checks; lists and room stats.
import { JobCheckSchema, JobFinishSchema, JobStartSchema } from '../../../shared/schemas/jobs.ts';
import { RoomRefSchema } from '../../../shared/schemas/room.ts';
import { finishJob, listJobs, recordCheck, roomStats, startJob } from '../../services/jobs.ts';
import { authedProcedure, router } from '../init.ts';

export const jobsRouter = router({
  start: authedProcedure.input(JobStartSchema).mutation(({ ctx, input }) => startJob(ctx.db, ctx.peers, ctx.session.userId, input)),
  finish: authedProcedure.input(JobFinishSchema).mutation(({ ctx, input }) => finishJob(ctx.db, ctx.peers, ctx.session.userId, input)),
  check: authedProcedure.input(JobCheckSchema).mutation(({ ctx, input }) => recordCheck(ctx.db, ctx.peers, ctx.session.userId, input)),
  /** My jobs: those I asked for and those I served. */
  list: authedProcedure.query(({ ctx }) => listJobs(ctx.db, ctx.session.userId)),
  roomStats: authedProcedure.input(RoomRefSchema).query(({ ctx, input }) => roomStats(ctx.db, ctx.session.userId, input.room)),
});
