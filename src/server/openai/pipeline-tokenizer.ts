// The tokenizer of a model /v1 asks as a pipeline job (docs/pipeline.md, "Asking from /v1"), and of a whole-model
// job's model when the server holds it (its conversation is fitted before a peer is asked: fit-conversation.ts): the
// server holds no stage and no engine for it, so it reads the model's tokenizer files from its own verified model
// cache (the files its /models/ route serves: a bundled model's, or a finished download's) with the requester's
// tokenizer the app's worker uses too (src/shared/pipeline/stage-tokenizer.ts). Loaded on first use: it brings
// transformers.js, which a server nobody asks for a mesh model does not need (bench/README.md, "A lean server").
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { EngineMessage } from '../../shared/engine-protocol.ts';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import type { stageTokenizers } from '../../shared/pipeline/stage-tokenizer.ts';
import type { FittedTokens } from '../../shared/pipeline/stage-worker-protocol.ts';
import { OpenAIError } from './errors.ts';

/** A tokenizer file the server reads at most (tokenizer.json of a large vocabulary is tens of MiB). */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** The files of a model the server does not hold. */
export class NotCachedError extends Error {
  override name = 'NotCachedError';
}

type CachedFile = FastifyInstance['models']['file'];

export interface PipelineTokenizer {
  /**
   * The prompt's ids for `messages`, fitted to the model's context as every chat of a model is (fitPrompt,
   * src/shared/chat-template.ts: the oldest turns left out, `maxNewTokens` cut to the room left);
   * a ContextOverflowError when even the last message alone leaves no room for an answer.
   */
  tokenize(
    messages: EngineMessage[],
    fit: { context: number; maxNewTokens: number },
  ): Promise<{ ids: number[]; eos: number[]; fitted?: FittedTokens }>;
  /** The text of token ids, decoded on this thread once the tokenizer is loaded (src/shared/text-deltas.ts). */
  decoder(): Promise<(ids: number[]) => string>;
  /**
   * Whether the server's cache holds the tokenizer's files, asked without loading anything: a whole-model job
   * (mesh-chat.ts) is fitted to the context here only then, and left to its peer's engine otherwise.
   */
  held(): Promise<boolean>;
}

/** The tokenizers of models in the server's cache, by catalogue entry (a few kept, as in the app's worker). */
export function serverTokenizers(file: CachedFile): (entry: ManifestEntry) => PipelineTokenizer {
  let loading: Promise<ReturnType<typeof stageTokenizers>> | null = null;
  // Files are named as the /models/ route names them: `<repo>/resolve/<revision>/<file>`.
  const read = async (url: string): Promise<Uint8Array> => {
    const match = /^([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    if (!match) throw new Error(`Not a model file: ${url}`);
    const [, repo, revision, name] = match as unknown as [string, string, string, string];
    const cached = await file(repo, revision, name);
    if (!cached) throw new NotCachedError(`${repo}/${name} is not in this server's model cache`);
    if (cached.size > MAX_FILE_BYTES) throw new Error(`${repo}/${name} is over ${MAX_FILE_BYTES} bytes`);
    return readFile(cached.path);
  };
  const tokenizers = () =>
    (loading ??= import('../../shared/pipeline/stage-tokenizer.ts').then((loaded) => loaded.stageTokenizers(read)));
  return (entry) => {
    const files = { base: `${entry.repo}/resolve/${entry.revision}/`, pinned: false };
    const refused = (error: unknown): never => {
      if (error instanceof NotCachedError)
        throw OpenAIError.unavailable(
          `This server holds no copy of ${entry.name}'s tokenizer, which a pipeline job needs (${error.message}): an account downloads the model on the Models screen (models.download), then try again`,
          5,
        );
      throw error;
    };
    return {
      tokenize: async (messages, fit) => (await tokenizers()).tokenize(files, messages, fit).catch(refused),
      decoder: async () => (await tokenizers()).decoder(files).catch(refused),
      held: async () => {
        const found = await Promise.all(
          ['tokenizer.json', 'tokenizer_config.json'].map((name) => file(entry.repo, entry.revision, name)),
        );
        return found.every((cached) => cached !== null && cached.size <= MAX_FILE_BYTES);
      },
    };
  };
}
