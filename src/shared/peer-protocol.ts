// The mesh inference protocol between peers, over a WebRTC data channel: one versioned discriminated union,
// every message schema-checked and size-capped on arrival. Messages larger than one frame travel as `chunk`
// frames and are put back together by the receiver (see mesh/peer-channel.ts).
import { z } from 'zod';
import { BackendSchema, ENGINE_LIMITS, EngineMessageSchema, SamplingSchema } from './engine-protocol.ts';
import { ModelIdSchema } from './schemas/models.ts';
import { PipelineCapabilitySchema, pipeMessageSchemas, setAsideOtherPipeProtocol } from './pipeline/pipe-protocol.ts';

export const PEER_PROTOCOL_VERSION = 1;

export const PEER_LIMITS = {
  /** One data channel send: well under the 256 KiB SCTP message size browsers and werift agree on. */
  frameChars: 16 * 1024,
  /** A whole message once its chunks are put back together (a long conversation fits). */
  messageChars: 512 * 1024,
  /** Messages being put back together at once, per peer; a new one past this drops the oldest. */
  partialMessages: 4,
  /** A message whose chunks stop coming is dropped after this. */
  partialTimeoutMs: 30_000,
  /** Sends wait while this much is buffered on the channel (backpressure); they resume at half of it. */
  bufferedHighBytes: 1024 * 1024,
  /** Messages queued behind a full channel before more to that peer are dropped. */
  pendingMessages: 4096,
  models: 16,
  /** Jobs waiting on a peer, as it reports them (a longer queue is reported as this). */
  reportedQueue: 1000,
  tokenChars: 256,
} as const;

const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);
const JobIdSchema = z.uuid();
const TokenIdSchema = z.number().int().min(0).max(0x7fff_ffff);

export const ModelRefSchema = z.object({ id: ModelIdSchema, sha256: Sha256Schema }).strict();
export type ModelRef = z.infer<typeof ModelRefSchema>;

/** What a peer says of itself, as sent: PeerCapabilitiesSchema reads it (socket-contract.ts omits `adapter`). */
export const PeerCapabilitiesFields = z
  .object({
    backend: BackendSchema.nullable(),
    /** What kind of device does the work: a discrete or integrated GPU, a CPU, or unknown. */
    adapter: z.enum(['discrete-gpu', 'integrated-gpu', 'cpu', 'unknown']),
    models: z.array(ModelRefSchema).max(PEER_LIMITS.models),
    /** Measured decode speed on this peer's loaded model; null before it has run anything. */
    tokensPerSecond: z.number().nonnegative().max(100_000).nullable(),
    queue: z.number().int().nonnegative().max(PEER_LIMITS.reportedQueue),
    sharing: z.boolean(),
    /** The pipeline stages this peer holds or can load (docs/pipeline.md); absent on peers that host none. */
    pipeline: PipelineCapabilitySchema.optional(),
    /**
     * Set on arrival, never sent: why this peer's `pipeline` was set aside (another pipe protocol version,
     * PIPE_PROTOCOL_VERSION in pipe-protocol.ts).
     */
    pipelineRefused: z.string().max(300).optional(),
  })
  .strict();
/** A peer's capabilities on arrival: stages of another pipe protocol are set aside, saying so. */
export const PeerCapabilitiesSchema = z.preprocess(setAsideOtherPipeProtocol, PeerCapabilitiesFields);
export type PeerCapabilities = z.infer<typeof PeerCapabilitiesSchema>;

/** Sampling for a mesh job: the engine's, every field given; the seed too, so whichever peer continues the job
 * draws the same tokens. */
export const JobSamplingSchema = SamplingSchema.required();
export type JobSampling = z.infer<typeof JobSamplingSchema>;

export const JobRejectReasonSchema = z.enum([
  'NOT_SHARING',
  'MODEL_NOT_LOADED',
  'QUEUE_FULL',
  'TOO_MANY_JOBS',
  'RATE_LIMITED',
  'DEADLINE_TOO_SHORT',
  'INVALID',
]);
export type JobRejectReason = z.infer<typeof JobRejectReasonSchema>;
/**
 * CONTEXT_OVERFLOW: the conversation's last message alone leaves no room for an answer in the model's context, so
 * every peer of that model would refuse it too (the fit is the same everywhere: src/shared/chat-template.ts).
 */
export const JobErrorCodeSchema = z.enum([
  'GENERATION_FAILED',
  'DEADLINE',
  'PREEMPTED',
  'SHUTTING_DOWN',
  'CONTEXT_OVERFLOW',
]);
export type JobErrorCode = z.infer<typeof JobErrorCodeSchema>;

const v = z.literal(PEER_PROTOCOL_VERSION);

export const PeerMessageSchema = z.discriminatedUnion('type', [
  z.object({ v, type: z.literal('hello'), capabilities: PeerCapabilitiesSchema }).strict(),
  z
    .object({
      v,
      type: z.literal('job:offer'),
      jobId: JobIdSchema,
      model: ModelRefSchema,
      messages: z
        .array(EngineMessageSchema)
        .min(1)
        .max(ENGINE_LIMITS.messages)
        .refine((list) => list.reduce((n, m) => n + m.content.length, 0) <= ENGINE_LIMITS.totalChars, {
          message: `A job's conversation holds at most ${ENGINE_LIMITS.totalChars} characters`,
        }),
      sampling: JobSamplingSchema,
      /** Answer tokens already received from a peer that left: the job continues after them. */
      prefix: z.array(TokenIdSchema).max(ENGINE_LIMITS.maxNewTokens),
      /** Milliseconds the requester will wait for the whole answer. */
      deadlineMs: z
        .number()
        .int()
        .min(1)
        .max(15 * 60_000),
      /** `check`: a spot check of another peer's answer (served like any job, counted apart). */
      purpose: z.enum(['answer', 'check']),
    })
    .strict(),
  z
    .object({ v, type: z.literal('job:accept'), jobId: JobIdSchema, position: z.number().int().min(0).max(10_000) })
    .strict(),
  z
    .object({
      v,
      type: z.literal('job:reject'),
      jobId: JobIdSchema,
      reason: JobRejectReasonSchema,
      message: z.string().max(500),
    })
    .strict(),
  z
    .object({
      v,
      type: z.literal('job:token'),
      jobId: JobIdSchema,
      index: z.number().int().min(0).max(ENGINE_LIMITS.maxNewTokens),
      tokenId: TokenIdSchema,
      text: z.string().max(PEER_LIMITS.tokenChars),
    })
    .strict(),
  z
    .object({
      v,
      type: z.literal('job:done'),
      jobId: JobIdSchema,
      reason: z.enum(['eos', 'length', 'interrupted']),
      backend: BackendSchema,
      tokensIn: z.number().int().min(0).max(10_000_000),
      tokensOut: z.number().int().min(0).max(ENGINE_LIMITS.maxNewTokens),
      ttftMs: z.number().min(0).max(3_600_000),
      tokensPerSecond: z.number().min(0).max(100_000),
    })
    .strict(),
  z
    .object({
      v,
      type: z.literal('job:error'),
      jobId: JobIdSchema,
      code: JobErrorCodeSchema,
      message: z.string().max(500),
    })
    .strict(),
  z.object({ v, type: z.literal('job:cancel'), jobId: JobIdSchema }).strict(),
  z.object({ v, type: z.literal('ping'), t: z.number() }).strict(),
  z.object({ v, type: z.literal('pong'), t: z.number() }).strict(),
  ...pipeMessageSchemas(v),
]);
export type PeerMessage = z.infer<typeof PeerMessageSchema>;
/** A message as written by the sender: the version is filled in on the way out. */
export type OutgoingPeerMessage = PeerMessage extends infer M ? (M extends PeerMessage ? Omit<M, 'v'> : never) : never;
export type JobOffer = Extract<PeerMessage, { type: 'job:offer' }>;

const TOKEN_KEYS = ['v', 'type', 'jobId', 'index', 'tokenId', 'text'] as const;
/** The last job id a `job:token` passed with: an answer's tokens all carry the same one. */
let checkedJobId = '';

/**
 * A `job:token` message, checked field by field as PeerMessageSchema checks it, or null for anything else (which
 * then goes through the schema, as does a token that fails here, for its error). The token is the message that comes
 * hundreds of times a second, and the union's parse cost the server about 30 µs of each (bench/README.md, issue 14).
 * peer-protocol.test.ts holds it to the schema's verdict.
 */
export function checkedTokenMessage(value: unknown): Extract<PeerMessage, { type: 'job:token' }> | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const message = value as Record<string, unknown>;
  // Strict: these keys and no others (a `__proto__` key from JSON.parse is an own key, so it counts as one more).
  if (Object.keys(message).length !== TOKEN_KEYS.length) return null;
  for (const key of TOKEN_KEYS) if (!Object.hasOwn(message, key)) return null;
  const { v: version, type, jobId, index, tokenId, text } = message;
  if (version !== PEER_PROTOCOL_VERSION || type !== 'job:token') return null;
  if (typeof text !== 'string' || text.length > PEER_LIMITS.tokenChars) return null;
  if (!Number.isSafeInteger(index) || (index as number) < 0 || (index as number) > ENGINE_LIMITS.maxNewTokens)
    return null;
  if (!Number.isSafeInteger(tokenId) || (tokenId as number) < 0 || (tokenId as number) > 0x7fff_ffff) return null;
  if (typeof jobId !== 'string') return null;
  if (jobId !== checkedJobId) {
    if (!JobIdSchema.safeParse(jobId).success) return null;
    checkedJobId = jobId;
  }
  return { v: PEER_PROTOCOL_VERSION, type, jobId, index: index as number, tokenId: tokenId as number, text };
}

/** A frame of a message too large for one send. */
export const ChunkFrameSchema = z
  .object({
    v,
    type: z.literal('chunk'),
    id: z.number().int().min(0),
    index: z.number().int().min(0),
    // Escaping can make a piece's frame six times its text: the whole message's cap still holds when put together.
    count: z
      .number()
      .int()
      .min(1)
      .max(Math.ceil((6 * PEER_LIMITS.messageChars) / PEER_LIMITS.frameChars)),
    data: z.string().max(PEER_LIMITS.frameChars),
  })
  .strict();
export type ChunkFrame = z.infer<typeof ChunkFrameSchema>;
