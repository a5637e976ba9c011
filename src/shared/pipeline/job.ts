// What every stage of a pipeline job is told when the job opens (the control message; the data travels as frames),
// and how the last stage picks a token: the project's seeded, position-keyed sampling, so a pipeline answer is
// the answer one engine running the whole model gives (docs/pipeline.md).
import { z } from 'zod';
import { FRAME_LIMITS } from './frame.ts';
import { argmax, forbidEnd, sampleInPlace, uniform } from '../sampling.ts';

/** At most this many end-of-sequence ids a job names (models have one to a few). */
export const PIPELINE_END_TOKENS = 16;

export const PipelineJobSchema = z
  .object({
    jobId: z.string().min(1).max(FRAME_LIMITS.jobIdBytes),
    temperature: z.number().min(0).max(2),
    topP: z.number().gt(0).max(1),
    /** Always set: a requester without one draws it, so a stage taken over elsewhere continues identically. */
    seed: z.number().int().min(0).max(0xffff_ffff),
    /**
     * The position of the answer's first token (the prompt's length) and the tokens that end an answer: the last
     * stage does not let the answer end there, as the engine does not (forbidEnd). Absent from an older requester.
     */
    answerStart: z.number().int().min(0).max(0x7fff_ffff).optional(),
    endTokens: z.array(z.number().int().min(0).max(0x7fff_ffff)).max(PIPELINE_END_TOKENS).optional(),
  })
  .strict();
export type PipelineJob = z.infer<typeof PipelineJobSchema>;

/** The job every stage is told for `request`: its sampling, and where the answer starts and what ends it. */
export function stageJob(
  job: Omit<PipelineJob, 'jobId'>,
  request: { prompt: readonly number[]; eos: ReadonlySet<number> },
): Omit<PipelineJob, 'jobId'> {
  return { ...job, answerStart: request.prompt.length, endTokens: [...request.eos].slice(0, PIPELINE_END_TOKENS) };
}

/**
 * The token for `position` (the count of tokens before it): greedy at temperature 0, else the seeded draw; the
 * answer's first token is never one that ends it (forbidEnd).
 */
export function pickToken(logits: Float32Array, job: Omit<PipelineJob, 'jobId'>, position: number): number {
  if (position === job.answerStart && job.endTokens) forbidEnd(logits, job.endTokens);
  if (job.temperature <= 0) return argmax(logits);
  return sampleInPlace(logits, job, uniform(job.seed, position));
}
