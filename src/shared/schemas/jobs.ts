// Records of mesh jobs (jobs.start, attempt, finish, check, list, roomStats), shared by the server and the client.
// The requester reports; the server checks that the peers it names are in the room as they take the job, records
// them, and lets finish and check name only the peers it recorded.
import { z } from 'zod';
import { BackendSchema } from '../engine-protocol.ts';
import { ModelRefSchema } from '../peer-protocol.ts';
import { PeerIdSchema, RoomSlugSchema } from '../socket-contract.ts';

// checkersPerJob: a spot check needs two checkers that answer at most; the rest is room for ones that fail.
export const JOB_LIMITS = {
  runningPerUser: 16,
  failovers: 64,
  checkersPerJob: 8,
  excludedPerCheck: 4,
  list: 50,
} as const;

export const JobPeerRoleSchema = z.enum(['SERVER', 'CHECKER']);

export const JobStartSchema = z
  .object({ room: RoomSlugSchema, serverPeerId: PeerIdSchema, model: ModelRefSchema })
  .strict();

/** A peer took the job: the next server after a failover, or a spot check's checker. */
export const JobAttemptSchema = z.object({ id: z.uuid(), peerId: PeerIdSchema, role: JobPeerRoleSchema }).strict();

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
