// The inference engine's protocol: one discriminated union each way between the app and the engine (a Web
// Worker in browsers, the same engine in-process in Node). Every message carries a `requestId`.
import { z } from 'zod';
import { ChatRoleSchema } from './schemas/chat.ts';
import { DtypeSchema, ModelIdSchema, RepoFilePathSchema, RepoSchema, RevisionSchema } from './schemas/models.ts';

/** Sized for small models in a browser tab: the context guard trims long histories well before these. */
export const ENGINE_LIMITS = {
  messages: 200,
  messageChars: 32_000,
  totalChars: 200_000,
  maxNewTokens: 4096,
  /** ONNX Runtime Web's WebAssembly threads a load may ask for (it uses at most 4 of its own accord). */
  threads: 16,
} as const;

export const BackendSchema = z.enum(['webgpu', 'wasm', 'cpu']);
export type Backend = z.infer<typeof BackendSchema>;
/** How the app names a backend to people. */
export const BACKEND_LABEL: Record<Backend, string> = { webgpu: 'WebGPU', wasm: 'WASM', cpu: 'CPU' };
export const BackendPreferenceSchema = z.enum(['auto', 'webgpu', 'wasm']);
export type BackendPreference = z.infer<typeof BackendPreferenceSchema>;

/** What the engine needs of a catalogue entry to load it from the server's `/models/` route. */
export const EngineModelSchema = z
  .object({
    id: ModelIdSchema,
    repo: RepoSchema,
    /** The pinned commit: `/models/...` URLs with it are immutable, so caches can keep them forever. */
    revision: RevisionSchema,
    dtype: z.object({ webgpu: DtypeSchema, wasm: DtypeSchema }).strict(),
    files: z.array(RepoFilePathSchema).min(1).max(64),
    contextLength: z.number().int().positive().max(1_048_576),
  })
  .strict();
export type EngineModel = z.infer<typeof EngineModelSchema>;

export const EngineMessageSchema = z
  .object({ role: ChatRoleSchema, content: z.string().max(ENGINE_LIMITS.messageChars) })
  .strict();
export type EngineMessage = z.infer<typeof EngineMessageSchema>;

export const SamplingSchema = z
  .object({
    /** 0 means greedy decoding. */
    temperature: z.number().min(0).max(2).default(0.7),
    topP: z.number().gt(0).max(1).default(0.95),
    maxNewTokens: z.number().int().min(1).max(ENGINE_LIMITS.maxNewTokens).default(256),
    /** Same seed, same model, same prompt: same tokens, on any peer (the draw depends on position only). */
    seed: z.number().int().min(0).max(0xffff_ffff).optional(),
  })
  .strict();
export type Sampling = z.infer<typeof SamplingSchema>;
export type SamplingInput = z.input<typeof SamplingSchema>;

const RequestId = z.string().min(1).max(64);

export const EngineRequestSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('load'),
      requestId: RequestId,
      model: EngineModelSchema,
      backend: BackendPreferenceSchema.default('auto'),
      /**
       * WASM: ONNX Runtime Web's threads (cross-origin isolation is needed for more than one). Absent: its own
       * choice, half the cores up to 4. The worker's runtime starts once, at its first load, so only that load's
       * value applies; a later load's is ignored and Ready reports the count in use.
       */
      threads: z.number().int().min(1).max(ENGINE_LIMITS.threads).optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('generate'),
      requestId: RequestId,
      messages: z
        .array(EngineMessageSchema)
        .min(1)
        .max(ENGINE_LIMITS.messages)
        .refine((list) => list.reduce((n, m) => n + m.content.length, 0) <= ENGINE_LIMITS.totalChars, {
          message: `A conversation sent to the engine holds at most ${ENGINE_LIMITS.totalChars} characters`,
        }),
      sampling: SamplingSchema.default({ temperature: 0.7, topP: 0.95, maxNewTokens: 256 }),
      /** Answer tokens already made (a job resumed on another peer): generation continues after them. */
      prefix: z.array(z.number().int().min(0).max(0x7fff_ffff)).max(ENGINE_LIMITS.maxNewTokens).default([]),
    })
    .strict(),
  /** Stops the running generation after the token being computed; its `complete` says `interrupted`. */
  z.object({ type: z.literal('interrupt'), requestId: RequestId }).strict(),
  /** Forgets the conversation (its KV cache); the loaded model stays. */
  z.object({ type: z.literal('reset'), requestId: RequestId }).strict(),
]);
export type EngineRequest = z.input<typeof EngineRequestSchema>;
export type ParsedEngineRequest = z.output<typeof EngineRequestSchema>;

export const LOAD_PHASES = ['Fetching', 'Preparing', 'Downloading', 'Loading', 'Ready'] as const;
export type LoadPhase = (typeof LOAD_PHASES)[number];

export interface FileProgress {
  loaded: number;
  total: number;
}

export type EngineErrorCode =
  'INVALID_REQUEST' | 'NOT_LOADED' | 'BUSY' | 'LOAD_FAILED' | 'CONTEXT_OVERFLOW' | 'GENERATION_FAILED';

export interface LoadedInfo {
  model: string;
  backend: Backend;
  dtype: z.infer<typeof DtypeSchema>;
  /** Why this backend and dtype, in words (e.g. "WebGPU adapter without shader-f16: q4 instead of q4f16"). */
  reason: string;
  contextLength: number;
  /** From the load's start to Ready, the warm-up included. */
  loadMs: number;
  /** Of loadMs, the warm-up run's share (0 without one): what the first answer no longer pays. */
  warmUpMs: number;
  /** WASM in a browser: ONNX Runtime Web's threads in use (its `env.wasm.numThreads` once started). */
  threads?: number;
}

export interface GenerationStats {
  reason: 'eos' | 'length' | 'interrupted';
  promptTokens: number;
  /** Prompt tokens whose keys and values came from the previous turn's cache instead of being recomputed. */
  reusedTokens: number;
  completionTokens: number;
  /** Oldest messages left out so the prompt and the answer fit the context. */
  trimmedMessages: number;
  ttftMs: number;
  /** Decode speed: tokens after the first over the time after the first. */
  tokensPerSecond: number;
  totalMs: number;
}

export type EngineReply =
  | {
      type: 'progress';
      requestId: string;
      phase: LoadPhase;
      message: string;
      files: Record<string, FileProgress>;
      loaded: number;
      total: number;
    }
  | ({ type: 'ready'; requestId: string } & LoadedInfo)
  | { type: 'token'; requestId: string; index: number; tokenId: number; text: string }
  | ({ type: 'complete'; requestId: string; text: string; tokenIds: number[] } & GenerationStats)
  | { type: 'error'; requestId: string; code: EngineErrorCode; message: string };
