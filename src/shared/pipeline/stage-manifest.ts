// A model's stage files as its repo describes them: `stages.json` beside the stage graphs (written by
// src/peer/splitter/stage-files.ts), read where a stage is loaded from the server's /models/ route or the device
// cache (docs/pipeline.md, "Stage files"). Environment-neutral.
import { z } from 'zod';
import { RepoFilePathSchema } from '../schemas/models.ts';

/** A file name beside the manifest: no folders, so a manifest can only name files in its own folder. */
const SiblingFileSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'Expected a file name in the manifest folder')
  .refine((name) => name !== '.' && name !== '..', 'Expected a file name');
const TensorNameSchema = z.string().min(1).max(128);
const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);

export const STAGE_LIMITS = { stages: 64, layers: 1024, names: 1024 } as const;

export const StageManifestSchema = z
  .object({
    format: z.literal('mesh-nanollm-stages'),
    version: z.literal(1),
    layers: z.number().int().min(1).max(STAGE_LIMITS.layers),
    /** The model version the stages were cut from (docs/pipeline.md#stage-fingerprints). */
    source: Sha256Schema.optional(),
    stages: z
      .array(
        z
          .object({
            index: z
              .number()
              .int()
              .min(0)
              .max(STAGE_LIMITS.stages - 1),
            layers: z.tuple([z.number().int().min(0), z.number().int().min(1)]),
            file: SiblingFileSchema,
            data: SiblingFileSchema.optional(),
            /** A digest of the stage's files (its graph, then its data). */
            sha256: Sha256Schema.optional(),
            inputs: z.array(TensorNameSchema).max(STAGE_LIMITS.names),
            outputs: z.array(TensorNameSchema).max(STAGE_LIMITS.names),
          })
          .strict(),
      )
      .min(1)
      .max(STAGE_LIMITS.stages),
  })
  .strict()
  .superRefine((manifest, ctx) => {
    // Stage i holds layers [from, to), contiguous from 0 to the model's last layer.
    let next = 0;
    manifest.stages.forEach((stage, i) => {
      if (stage.index !== i || stage.layers[0] !== next || stage.layers[1] <= stage.layers[0])
        ctx.addIssue({ code: 'custom', message: `stage ${i} does not follow layer ${next}`, path: ['stages', i] });
      next = stage.layers[1];
    });
    if (next !== manifest.layers)
      ctx.addIssue({ code: 'custom', message: `the stages end at layer ${next}, not ${manifest.layers}` });
  });
export type StageManifestFile = z.infer<typeof StageManifestSchema>;

/** The manifest's path in a repo when the catalogue names none. */
export const DEFAULT_STAGE_MANIFEST = 'onnx/stages.json';

/** A file of the manifest at `manifestPath`, as a repo path. */
export function stageFilePath(manifestPath: string, name: string): string {
  const folder = manifestPath.includes('/') ? manifestPath.slice(0, manifestPath.lastIndexOf('/') + 1) : '';
  return RepoFilePathSchema.parse(`${folder}${name}`);
}
