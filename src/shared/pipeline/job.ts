// What every stage of a pipeline job is told when the job opens (the control message; the data travels as frames),
// and how the last stage picks a token: the project's seeded, position-keyed sampling, so a pipeline answer is
// the answer one engine running the whole model gives (docs/pipeline.md).
import { z } from 'zod';
import { FRAME_LIMITS } from './frame.ts';
import { argmax, sampleInPlace, uniform } from '../sampling.ts';

export const PipelineJobSchema = z
  .object({
    jobId: z.string().min(1).max(FRAME_LIMITS.jobIdBytes),
    temperature: z.number().min(0).max(2),
    topP: z.number().gt(0).max(1),
    /** Always set: a requester without one draws it, so a stage taken over elsewhere continues identically. */
    seed: z.number().int().min(0).max(0xffff_ffff),
  })
  .strict();
export type PipelineJob = z.infer<typeof PipelineJobSchema>;

/** The token for `position` (the count of tokens before it): greedy at temperature 0, else the seeded draw. */
export function pickToken(logits: Float32Array, job: Omit<PipelineJob, 'jobId'>, position: number): number {
  if (job.temperature <= 0) return argmax(logits);
  return sampleInPlace(logits, job, uniform(job.seed, position));
}
