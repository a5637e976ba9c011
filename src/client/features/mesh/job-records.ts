// Mesh job records from the browser: through tRPC's jobs.* procedures, as the signed-in user.
import type { JobRecorder } from '../../../shared/mesh/mesh-answer.ts';
import { trpc } from '../../lib/trpc.ts';

export const trpcJobRecorder: JobRecorder = {
  start: (input) => trpc.jobs.start.mutate(input),
  attempt: (input) => trpc.jobs.attempt.mutate(input),
  finish: (input) => trpc.jobs.finish.mutate(input),
  check: (input) => trpc.jobs.check.mutate(input),
};
