// The messages that open and run stages in the inference worker (browser stages, docs/pipeline.md), beside the
// engine protocol on the same worker: requests are `stage-*`, replies too, every one with a `requestId`.
// Tensors travel as typed arrays (structured clone). Checked with zod on arrival in the worker. A requester of a
// pipeline job (which holds no stage of it) uses the same worker for the model's tokenizer: `stage-tokenize` turns a
// conversation into the prompt's token ids with the model's chat template (fitted to the model's context as the
// engine fits it, when asked), `stage-detokenize` ids into text, and `stage-text-deltas` an answer's text as its
// tokens come: the worker keeps the answer's TextDeltas (src/shared/text-deltas.ts), so each token decodes a few ids,
// not the whole answer again.
import { z } from 'zod';
import { ENGINE_LIMITS, EngineMessageSchema } from '../engine-protocol.ts';
import { RepoFilePathSchema, RepoSchema, RevisionSchema } from '../schemas/models.ts';
import { DEFAULT_STAGE_MANIFEST, STAGE_LIMITS } from './stage-manifest.ts';
import type { StageTensor, StageValueInfo } from './stage-session.ts';

export const STAGE_WORKER_LIMITS = {
  /** Stages one worker holds at once. */
  stages: 8,
  feeds: 2 * STAGE_LIMITS.layers + 8,
  /** Values in one run's feeds together (float32 or int64): 64M, 256 to 512 MiB. */
  values: 64 * 1024 * 1024,
  dims: 8,
  /** Answers whose text a worker streams at once (`stage-text-deltas`): past it, the least recently used is dropped. */
  textStreams: 16,
} as const;

const RequestId = z.string().min(1).max(64);
const StageId = z.string().min(1).max(64);
const TextStreamId = z.string().min(1).max(64);
const ModelAtSchema = z.object({ repo: RepoSchema, revision: RevisionSchema }).strict();
const TokenIdSchema = z.number().int().min(0).max(0x7fff_ffff);

const TensorSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('float32'), data: z.instanceof(Float32Array), dims: z.array(z.number()) }).strict(),
    z.object({ type: z.literal('int64'), data: z.instanceof(BigInt64Array), dims: z.array(z.number()) }).strict(),
  ])
  .superRefine((tensor, ctx) => {
    const { dims } = tensor;
    if (dims.length > STAGE_WORKER_LIMITS.dims || dims.some((d) => !Number.isInteger(d) || d < 0))
      ctx.addIssue({ code: 'custom', message: `dims must be at most ${STAGE_WORKER_LIMITS.dims} whole numbers` });
    else if (dims.reduce((n, d) => n * d, 1) !== tensor.data.length)
      ctx.addIssue({ code: 'custom', message: `dims ${dims.join('x')} do not match ${tensor.data.length} values` });
  });

export const StageWorkerRequestSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('stage-open'),
      requestId: RequestId,
      /** The caller's name for this stage in later requests. */
      stageId: StageId,
      model: ModelAtSchema,
      /** The model's stage manifest (`stages.json`); its files are beside it. */
      manifest: RepoFilePathSchema.default(DEFAULT_STAGE_MANIFEST),
      index: z
        .number()
        .int()
        .min(0)
        .max(STAGE_LIMITS.stages - 1),
      backend: z.enum(['auto', 'webgpu', 'wasm']).default('auto'),
    })
    .strict(),
  z
    .object({
      type: z.literal('stage-run'),
      requestId: RequestId,
      stageId: StageId,
      feeds: z
        .record(z.string().min(1).max(128), TensorSchema)
        .refine((feeds) => Object.keys(feeds).length <= STAGE_WORKER_LIMITS.feeds, 'too many feeds')
        .refine(
          (feeds) => Object.values(feeds).reduce((n, t) => n + t.data.length, 0) <= STAGE_WORKER_LIMITS.values,
          `a run's feeds hold at most ${STAGE_WORKER_LIMITS.values} values`,
        ),
    })
    .strict(),
  z.object({ type: z.literal('stage-release'), requestId: RequestId, stageId: StageId }).strict(),
  z
    .object({
      type: z.literal('stage-tokenize'),
      requestId: RequestId,
      model: ModelAtSchema,
      messages: z
        .array(EngineMessageSchema)
        .min(1)
        .max(ENGINE_LIMITS.messages)
        .refine((list) => list.reduce((n, m) => n + m.content.length, 0) <= ENGINE_LIMITS.totalChars, {
          message: `A conversation holds at most ${ENGINE_LIMITS.totalChars} characters`,
        }),
      /** Fit the conversation to the model's context, as the engine does: the oldest turns left out. */
      fit: z
        .object({
          context: z.number().int().positive().max(1_048_576),
          maxNewTokens: z.number().int().positive().max(ENGINE_LIMITS.maxNewTokens),
        })
        .strict()
        .optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('stage-detokenize'),
      requestId: RequestId,
      model: ModelAtSchema,
      ids: z.array(TokenIdSchema).max(ENGINE_LIMITS.maxNewTokens),
    })
    .strict(),
  z
    .object({
      type: z.literal('stage-text-deltas'),
      requestId: RequestId,
      model: ModelAtSchema,
      /** The caller's name for one answer's text; `from: 0` starts it afresh. */
      streamId: TextStreamId,
      /** How many of the answer's ids came before these: what the worker must hold, or it refuses. */
      from: z.number().int().min(0).max(ENGINE_LIMITS.maxNewTokens),
      ids: z.array(TokenIdSchema).max(ENGINE_LIMITS.maxNewTokens),
      /** The answer's last ids: the text still held back comes too, and the worker forgets the answer. */
      end: z.boolean().default(false),
    })
    .strict()
    .refine((request) => request.from + request.ids.length <= ENGINE_LIMITS.maxNewTokens, {
      message: `An answer holds at most ${ENGINE_LIMITS.maxNewTokens} tokens`,
      path: ['ids'],
    }),
]);
type ParsedInput = z.input<typeof StageWorkerRequestSchema>;
/** A request as sent (a run's feeds as the stage runner makes them; the schema checks them on arrival). */
export type StageWorkerRequest =
  | Exclude<ParsedInput, { type: 'stage-run' }>
  | { type: 'stage-run'; requestId: string; stageId: string; feeds: Record<string, StageTensor> };

export const STAGE_REQUEST_TYPES: ReadonlySet<string> = new Set([
  'stage-open',
  'stage-run',
  'stage-release',
  'stage-tokenize',
  'stage-detokenize',
  'stage-text-deltas',
]);

export type StageWorkerErrorCode =
  'INVALID_REQUEST' | 'TOO_MANY_STAGES' | 'UNKNOWN_STAGE' | 'LOAD_FAILED' | 'RUN_FAILED' | 'CONTEXT_OVERFLOW';

/** Where a stage file came from: this device's model cache, or the server's /models/ route. */
export type StageFileSource = 'device' | 'server';

export interface StageOpened {
  stageId: string;
  layers: [number, number];
  backend: 'webgpu' | 'wasm';
  /** Why this backend, in words. */
  reason: string;
  inputs: StageValueInfo[];
  outputs: StageValueInfo[];
  files: Record<string, StageFileSource>;
  loadMs: number;
}

/** How a conversation was fitted to the context: messages left out (oldest first), and the answer's room. */
export interface FittedTokens {
  trimmed: number;
  maxNewTokens: number;
}

export type StageWorkerReply =
  | ({ type: 'stage-ready'; requestId: string } & StageOpened)
  | { type: 'stage-result'; requestId: string; outputs: Record<string, StageTensor> }
  | { type: 'stage-released'; requestId: string }
  /**
   * The prompt's ids (chat template applied, generation prompt added) and the tokens that end an answer; asked to
   * fit, the messages left out and the answer's room (`fit.maxNewTokens`, or less).
   */
  | { type: 'stage-tokens'; requestId: string; ids: number[]; eos: number[]; fitted?: FittedTokens }
  /**
   * Special tokens skipped, as the engine's answers are. For `stage-text-deltas`, the text those ids complete (a
   * character split across tokens held back until its last token comes, then given whole).
   */
  | { type: 'stage-text'; requestId: string; text: string }
  | { type: 'stage-error'; requestId: string; code: StageWorkerErrorCode; message: string };
