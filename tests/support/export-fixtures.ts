// The export-shaped tiny models (scripts/tiny-model/export-shapes.ts) published on a fake Hub with a catalogue
// naming them without file lists, so the server derives their files as it does for real Hub models; and the
// engine's view of one once the server holds it, taken from `manifest.list` as the app takes it.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { type FakeHub, bufferContent } from '../../scripts/fake-hub.ts';
import {
  EXPORT_SHAPES,
  type ExportModel,
  type ExportShapeName,
  referenceOptions,
  writeExportModel,
} from '../../scripts/tiny-model/export-shapes.ts';
import { greedy } from '../../scripts/tiny-model/reference.ts';
import type { EngineMessage, EngineModel } from '../../src/shared/engine-protocol.ts';

/** Every variant the generator makes. */
export const ALL_EXPORT_SHAPE_NAMES = Object.keys(EXPORT_SHAPES) as ExportShapeName[];

export interface PublishedExport extends ExportModel {
  id: string;
  repo: string;
  commit: string;
}

/**
 * Generates the variant `name` into `dir/<id>` and publishes it as `repo` (`mesh/<name>` unless given), with a model
 * card (`license` in its front matter when given, as models.add wants); `id` is the folder and the catalogue id.
 */
export async function publishExportShape(
  hub: FakeHub,
  dir: string,
  name: ExportShapeName,
  { repo = `mesh/${name}`, id = name, license }: { repo?: string; id?: string; license?: string } = {},
): Promise<PublishedExport> {
  const local = path.join(dir, id);
  const model = await writeExportModel(local, EXPORT_SHAPES[name]);
  // A model card, as every Hub repo has: in the tree, never fetched.
  const card = license ? `---\nlicense: ${license}\n---\n# ${name}\n` : `# ${name}\n`;
  const files = Object.fromEntries(
    await Promise.all(
      model.files.map(async (file) => [file, bufferContent(await readFile(path.join(local, file)))] as const),
    ),
  );
  const { commit } = await hub.addRepo(repo, { ...files, 'README.md': bufferContent(card) });
  return { ...model, id, repo, commit };
}

/** Generates each variant into `dir/<name>`, publishes it as `mesh/<name>`, writes `dir/manifest.json`. */
export async function publishExportShapes(
  hub: FakeHub,
  dir: string,
  names: readonly ExportShapeName[] = ALL_EXPORT_SHAPE_NAMES,
): Promise<{ manifestPath: string; published: Record<string, PublishedExport> }> {
  const published: Record<string, PublishedExport> = {};
  for (const name of names) published[name] = await publishExportShape(hub, dir, name);
  const manifestPath = path.join(dir, 'manifest.json');
  await writeFile(
    manifestPath,
    JSON.stringify({
      mode: 'extend',
      models: Object.values(published).map((m) => ({
        id: m.id,
        name: `Export-shaped ${m.id}`,
        repo: m.repo,
        revision: 'main',
        task: 'text-generation',
        dtype: { webgpu: m.shape.dtype, wasm: m.shape.dtype },
        contextLength: 512,
        license: 'mit',
      })),
    }),
  );
  return { manifestPath, published };
}

/** The engine's view of a downloaded model, from the server's catalogue (`manifest.list`), as the app builds it. */
export async function engineModelFromServer(origin: string, id: string): Promise<EngineModel> {
  const response = await fetch(`${origin}/api/trpc/manifest.list`);
  const body = (await response.json()) as {
    result: {
      data: (Pick<EngineModel, 'id' | 'repo' | 'dtype' | 'contextLength'> & {
        files: { path: string }[];
        cachedRevision: string | null;
      })[];
    };
  };
  const entry = body.result.data.find((m) => m.id === id);
  if (!entry?.cachedRevision) throw new Error(`${id} is not downloaded on ${origin}`);
  const { repo, dtype, contextLength } = entry;
  return { id, repo, revision: entry.cachedRevision, dtype, contextLength, files: entry.files.map((f) => f.path) };
}

/**
 * The reference forward pass's greedy answer to `messages` for a published variant, the prompt tokenized with
 * the variant's own tokenizer and chat template from disk (`dir/<name>`).
 */
export async function referenceTokens(
  dir: string,
  model: PublishedExport,
  messages: EngineMessage[],
  maxNewTokens: number,
): Promise<{ prompt: string; tokens: number[] }> {
  const saved = { local: env.allowLocalModels, remote: env.allowRemoteModels, path: env.localModelPath };
  env.allowLocalModels = true;
  env.allowRemoteModels = false;
  env.localModelPath = dir;
  try {
    const tokenizer = await AutoTokenizer.from_pretrained(model.id);
    const prompt = tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }) as string;
    const ids = tokenizer.encode(prompt, { add_special_tokens: false });
    const options = referenceOptions(model.shape.dtype);
    return { prompt, tokens: greedy(model.weights, ids, maxNewTokens, model.eosIds, options) };
  } finally {
    env.allowLocalModels = saved.local;
    env.allowRemoteModels = saved.remote;
    env.localModelPath = saved.path;
  }
}
