// Records of mesh jobs (jobs.start, attempt, finish, check, list, roomStats), shared by the server and the client.
// The requester reports; the server checks that the peers it names are in the room as they take the job, records
// them, and lets finish and check name only the peers it recorded.
import { z } from 'zod';
import { BackendSchema } from '../engine-protocol.ts';
import { ModelRefSchema } from '../peer-protocol.ts';
import { LayerRangeSchema } from '../pipeline/pipe-protocol.ts';
import { PeerIdSchema, RoomSlugSchema } from '../socket-contract.ts';

// checkersPerJob: a spot check needs two checkers that answer at most; the rest is room for ones that fail (a
// pipeline's checker may be a chain of several stage peers). stages: the peers of one pipeline job's chain.
export const JOB_LIMITS = {
  runningPerUser: 16,
  failovers: 64,
  checkersPerJob: 16,
  stages: 16,
  excludedPerCheck: 4,
  list: 50,
} as const;

export const JobPeerRoleSchema = z.enum(['SERVER', 'CHECKER']);

/** One stage of a pipeline job (docs/pipeline.md): the peer that runs layers [from, to) of the model. */
export const JobStageSchema = z.object({ peerId: PeerIdSchema, layers: LayerRangeSchema }).strict();

export const JobStartSchema = z
  .object({
    room: RoomSlugSchema,
    /** The peer that makes the tokens: a pipeline's last stage (it samples them). */
    serverPeerId: PeerIdSchema,
    model: ModelRefSchema,
    /** A pipeline job: its chain of stages in layer order, from layer 0, each on its own peer; absent for a whole-model job. */
    stages: z.array(JobStageSchema).min(1).max(JOB_LIMITS.stages).optional(),
  })
  .strict()
  .superRefine((input, ctx) => {
    if (!input.stages) return;
    const peers = new Set(input.stages.map((stage) => stage.peerId));
    if (peers.size !== input.stages.length)
      ctx.addIssue({ code: 'custom', message: 'Each stage runs on its own peer', path: ['stages'] });
    let next = 0;
    input.stages.forEach((stage, i) => {
      if (stage.layers[0] !== next)
        ctx.addIssue({ code: 'custom', message: `stage ${i} does not follow layer ${next}`, path: ['stages', i] });
      next = stage.layers[1];
    });
    if (input.stages.at(-1)?.peerId !== input.serverPeerId)
      ctx.addIssue({ code: 'custom', message: 'serverPeerId is the last stage (it samples)', path: ['serverPeerId'] });
  });

/**
 * A peer took the job: the next server after a failover, or a spot check's checker. A server taking over a stage
 * of a pipeline job names the stage's layers.
 */
export const JobAttemptSchema = z
  .object({ id: z.uuid(), peerId: PeerIdSchema, role: JobPeerRoleSchema, layers: LayerRangeSchema.optional() })
  .strict()
  .refine((input) => input.role === 'SERVER' || !input.layers, {
    message: 'Only a server takes over a stage (layers)',
    path: ['layers'],
  });

export const JobFinishSchema = z
  .object({
    id: z.uuid(),
    outcome: z.enum(['COMPLETED', 'CANCELLED', 'FAILED']),
    /** The peer that made the last tokens (another one after a failover): one recorded as this job's server. */
    serverPeerId: PeerIdSchema.optional(),
    backend: BackendSchema.optional(),
    tokensIn: z.number().int().min(0).max(10_000_000),
    tokensOut: z.number().int().min(0).max(100_000),
    ttftMs: z.number().min(0).max(3_600_000).optional(),
    tokensPerSecond: z.number().min(0).max(100_000).optional(),
    failoverCount: z.number().int().min(0).max(JOB_LIMITS.failovers),
    errorCode: z
      .string()
      .regex(/^[A-Z_]{1,64}$/)
      .optional(),
  })
  .strict();

export const JobCheckSchema = z
  .object({
    id: z.uuid(),
    result: z.enum(['MATCH', 'MISMATCH', 'UNRESOLVED']),
    /** Peers whose tokens lost the check (excluded from this requester's scheduling in the room): recorded ones, each once. */
    excludedPeerIds: z
      .array(PeerIdSchema)
      .max(JOB_LIMITS.excludedPerCheck)
      .refine((ids) => new Set(ids).size === ids.length, 'Name each peer once'),
  })
  .strict();
