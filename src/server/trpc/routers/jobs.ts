// Mesh job records: the requester starts each job, names each further peer that takes it (a failover's server, a
// spot check's checker), finishes it and reports its spot check; lists and room stats. Every record spends one of
// the user's job records for the minute (JOB_RECORDS_PER_MINUTE, a budget of services/budgets.ts, per IP too),
// refused or not, so a flood of bad reports costs the flooder too.
import { JobAttemptSchema, JobCheckSchema, JobFinishSchema, JobStartSchema } from '../../../shared/schemas/jobs.ts';
import { RoomRefSchema } from '../../../shared/schemas/room.ts';
import { finishJob, recordAttempt, recordCheck, startJob } from '../../services/jobs.ts';
import { listJobs, roomStats } from '../../services/job-views.ts';
import { authedProcedure, costly, router } from '../init.ts';

const recordProcedure = authedProcedure.use(costly('jobRecord'));

export const jobsRouter = router({
  start: recordProcedure
    .input(JobStartSchema)
    .mutation(({ ctx, input }) => startJob(ctx.db, ctx.peers, ctx.session.userId, input)),
  /** Another peer took the job: the next server after a failover, or a spot check's checker. */
  attempt: recordProcedure
    .input(JobAttemptSchema)
    .mutation(({ ctx, input }) => recordAttempt(ctx.db, ctx.peers, ctx.session.userId, input)),
  finish: recordProcedure
    .input(JobFinishSchema)
    .mutation(({ ctx, input }) => finishJob(ctx.db, ctx.session.userId, input)),
  check: recordProcedure
    .input(JobCheckSchema)
    .mutation(({ ctx, input }) => recordCheck(ctx.db, ctx.session.userId, input)),
  /** My jobs: those I asked for and those I served. */
  list: authedProcedure.query(({ ctx }) => listJobs(ctx.db, ctx.session.userId)),
  roomStats: authedProcedure
    .input(RoomRefSchema)
    .query(({ ctx, input }) => roomStats(ctx.db, ctx.session.userId, input.room)),
});
