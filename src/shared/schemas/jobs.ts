// Records of mesh jobs (jobs.start, finish, check, list, roomStats), shared by the server and the client. The
// requester reports; the server checks that the peers it names are in the room and fills in who they are.
import { z } from 'zod';
import { BackendSchema } from '../engine-protocol.ts';
import { ModelRefSchema } from '../peer-protocol.ts';
import { PeerIdSchema, RoomSlugSchema } from '../socket-contract.ts';

export const JOB_LIMITS = { runningPerUser: 16, failovers: 64, excludedPerCheck: 4, list: 50 } as const;

export const JobStartSchema = z.object({ room: RoomSlugSchema, serverPeerId: PeerIdSchema, model: ModelRefSchema }).strict();

export const JobFinishSchema = z
  .object({
    id: z.uuid(),
    outcome: z.enum(['COMPLETED', 'CANCELLED', 'FAILED']),
    /** The peer that made the last tokens (another one after a failover). */
    serverPeerId: PeerIdSchema.optional(),
    backend: BackendSchema.optional(),
    tokensIn: z.number().int().min(0).max(10_000_000),
    tokensOut: z.number().int().min(0).max(100_000),
    ttftMs: z.number().min(0).max(3_600_000).optional(),
    tokensPerSecond: z.number().min(0).max(100_000).optional(),
    failoverCount: z.number().int().min(0).max(JOB_LIMITS.failovers),
    errorCode: z.string().regex(/^[A-Z_]{1,64}$/).optional(),
  })
  .strict();

export const JobCheckSchema = z
  .object({
    id: z.uuid(),
    result: z.enum(['MATCH', 'MISMATCH', 'UNRESOLVED']),
    /** Peers whose tokens lost the check (excluded from this requester's scheduling in the room). */
    excludedPeerIds: z.array(PeerIdSchema).max(JOB_LIMITS.excludedPerCheck),
  })
  .strict();
