// The control messages of a pipeline job between peers of a room, on the peer protocol's JSON channel (the hidden
// states travel as binary frames on the frame channel beside it), and what a peer says of the stages it holds in
// its capabilities (docs/pipeline.md, "Stages hosted by peers in a room"). Part of the peer protocol's union
// (peer-protocol.ts); every message is schema-checked on arrival like the others.
import { z } from 'zod';
import { ModelIdSchema } from '../schemas/models.ts';
import { PipelineJobSchema } from './job.ts';

/**
 * The version of the pipeline's part of the peer protocol, in every stage peer's capability (`protocol`). 1: before
 * stage fingerprints (no `protocol`, no `version` nor `fingerprints`); 2: stage fingerprints, and a stage saying it
 * is running a frame in its `pipe:position` (`runningMs`). A peer's capability of another version is set aside with
 * a message naming both (`setAsideOtherPipeProtocol`), so two peers of different versions say why their stages do
 * not meet rather than one refusing the other's hello unexplained.
 */
export const PIPE_PROTOCOL_VERSION = 2;

export const PIPE_LIMITS = {
  /** Layers of a model a pipeline runs. */
  layers: 1024,
  /** Layer ranges one peer says it holds. */
  stagesHeld: 16,
  stagesLoadable: 64,
} as const;

const PeerIdSchema = z.uuid();
const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);
const PipeJobIdSchema = z.uuid();
const LayerSchema = z.number().int().min(0).max(PIPE_LIMITS.layers);

/** Layers [from, to) of a model: a stage. */
export const LayerRangeSchema = z
  .tuple([LayerSchema, LayerSchema])
  .refine(([from, to]) => from < to, { message: 'A stage holds at least one layer (from < to)' });
export type LayerRange = z.infer<typeof LayerRangeSchema>;

/** What a peer says of its pipeline stages (in `hello` and its presence). */
export const PipelineCapabilitySchema = z
  .object({
    /** PIPE_PROTOCOL_VERSION: another is set aside before this schema (setAsideOtherPipeProtocol). */
    protocol: z.literal(PIPE_PROTOCOL_VERSION),
    model: ModelIdSchema,
    /** The whole model's layer count. */
    layers: LayerSchema.min(1),
    /** Stages loaded here now. */
    holds: z.array(LayerRangeSchema).max(PIPE_LIMITS.stagesHeld),
    /** Stages it can load when asked (stage files it has). */
    loadable: z.array(LayerRangeSchema).max(PIPE_LIMITS.stagesLoadable),
    /** It can cut any layer range from the whole model's graph when asked (planning may then give it any). */
    anyRange: z.boolean(),
    /** Memory one layer takes here (weights and cache), and memory it can give to stages, in MiB. */
    layerMb: z
      .number()
      .min(0)
      .max(1 << 20),
    freeMemoryMb: z
      .number()
      .int()
      .min(0)
      .max(1 << 30),
    /** Measured speed: rows through one layer per second (null before it ran any). */
    speed: z.number().min(0).max(1e9).nullable(),
    /**
     * The model version its stages are cut from: the catalogue's fingerprint of the weights (modelFingerprint) for
     * a model from the server, else a digest of the whole graph's files, or of the stage files' cut
     * (docs/pipeline.md#stage-fingerprints). A chain never mixes versions.
     */
    version: Sha256Schema,
    /** Each stage it holds or can load from files: its fingerprint (version, layers, digests of its files). */
    fingerprints: z
      .array(z.object({ layers: LayerRangeSchema, sha256: Sha256Schema }).strict())
      .max(PIPE_LIMITS.stagesHeld + PIPE_LIMITS.stagesLoadable),
  })
  .strict();

/** Why a stage peer of pipe protocol `theirs` is not chained here (each side says it of the other). */
export function pipeProtocolMismatch(theirs: number): string {
  const before = theirs === 1 ? ' (from before stage fingerprints)' : '';
  return (
    `pipe protocol mismatch: its stages speak pipe protocol ${theirs}${before}, this peer speaks pipe protocol ` +
    `${PIPE_PROTOCOL_VERSION}; update the older peer to chain them`
  );
}

/**
 * What a peer says of itself (`hello`, presence), with a `pipeline` capability of another pipe protocol (none named
 * is 1) taken out and `pipelineRefused` saying why: the peer stays usable for whole-model jobs, its stages are not
 * chained, and the mismatch is named rather than the whole hello dropped on an unknown or missing field.
 */
export function setAsideOtherPipeProtocol(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || !('pipeline' in value)) return value;
  const { pipeline, ...rest } = value as { pipeline: unknown };
  if (typeof pipeline !== 'object' || pipeline === null) return value;
  const theirs = (pipeline as { protocol?: unknown }).protocol ?? 1;
  if (typeof theirs !== 'number' || !Number.isInteger(theirs) || theirs === PIPE_PROTOCOL_VERSION) return value;
  return { ...rest, pipelineRefused: pipeProtocolMismatch(theirs) };
}

/** A stage's fingerprint: the model version it is cut from, its layers and the digests of its files, in order. */
export async function stageFingerprint(
  version: string,
  layers: LayerRange,
  fileDigests: readonly string[],
): Promise<string> {
  const text = ['mesh-nanollm-stage', version, `${layers[0]}-${layers[1]}`, ...fileDigests].join('\n');
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}
export type PipelineCapability = z.infer<typeof PipelineCapabilitySchema>;

/** Why a stage failed a job: the stage host's codes, and those of hosting it on a peer. */
export const PipeFailureCodeSchema = z.enum([
  'OUT_OF_ORDER',
  'WRONG_INPUT',
  'CONTEXT_OVERFLOW',
  'BAD_GRAPH',
  'BAD_FRAME',
  'UNKNOWN_JOB',
  'BUSY',
  'FAILED',
  /** This peer does not hold and cannot load the stage asked for. */
  'NO_STAGE',
  /** The stage file would not load. */
  'LOAD_FAILED',
  /** A peer named as upstream or downstream has no frame channel open with this one. */
  'NO_CHANNEL',
  'INVALID',
]);
export type PipeFailureCode = z.infer<typeof PipeFailureCodeSchema>;

export function pipeMessageSchemas<V extends z.ZodType>(v: V) {
  return [
    z
      .object({
        v,
        type: z.literal('pipe:open'),
        jobId: PipeJobIdSchema,
        job: PipelineJobSchema.omit({ jobId: true }),
        model: ModelIdSchema,
        layers: LayerRangeSchema,
        /** Where this stage's input comes from and where its output goes: a peer, or null for the requester. */
        from: PeerIdSchema.nullable(),
        to: PeerIdSchema.nullable(),
      })
      .strict(),
    z.object({ v, type: z.literal('pipe:opened'), jobId: PipeJobIdSchema }).strict(),
    z
      .object({
        v,
        type: z.literal('pipe:failed'),
        jobId: PipeJobIdSchema,
        code: PipeFailureCodeSchema,
        message: z.string().max(500),
      })
      .strict(),
    z.object({ v, type: z.literal('pipe:close'), jobId: PipeJobIdSchema }).strict(),
    /** Failover: take input from `from` now (the stage before was replaced); answered with `pipe:position`. */
    z.object({ v, type: z.literal('pipe:upstream'), jobId: PipeJobIdSchema, from: PeerIdSchema.nullable() }).strict(),
    /** Stall detection: how far this stage's cache goes for the job now; answered with `pipe:position`. */
    z.object({ v, type: z.literal('pipe:status'), jobId: PipeJobIdSchema }).strict(),
    /** How far this stage's cache goes for the job (after `pipe:upstream`, once it ran every frame it received). */
    z
      .object({
        v,
        type: z.literal('pipe:position'),
        jobId: PipeJobIdSchema,
        position: z.number().int().min(0),
        /**
         * Answering `pipe:status`: how long the stage has been running one frame of the job, when it is (a long
         * frame's run moves no position: the stall watchdog tells it from a dead peer by this).
         */
        runningMs: z
          .number()
          .int()
          .min(0)
          .max(24 * 3_600_000)
          .optional(),
      })
      .strict(),
    /**
     * Failover: send to `to` from now on (the next stage was replaced), replaying what was kept, rebuild-only up to
     * `upTo`; answered with `pipe:redirected`.
     */
    z
      .object({
        v,
        type: z.literal('pipe:redirect'),
        jobId: PipeJobIdSchema,
        to: PeerIdSchema.nullable(),
        upTo: z.number().int().min(0),
      })
      .strict(),
    z.object({ v, type: z.literal('pipe:redirected'), jobId: PipeJobIdSchema }).strict(),
  ] as const;
}
