// The tokenizer of a model asked as a pipeline job (docs/pipeline.md, "Asking from the chat", "Asking from /v1"):
// the requester holds no stage of that model and no engine for it, yet needs the prompt's token ids (the chat
// template applied) and the answer's text. Environment-neutral: the files come through a reader, the device's model
// cache or the server's /models/ route in the app's worker (src/worker/stage-worker-host.ts), the server's verified
// model cache on the server (src/server/openai/pipeline-tokenizer.ts). Not through transformers.js' own loader: that
// one reads global settings the engine sets for the model it loads, which may be another model at the same time.
import * as transformers from '@huggingface/transformers';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import type { EngineMessage } from '../engine-protocol.ts';
import { endTokens, fitPrompt, promptIds } from '../chat-template.ts';
import type { FittedTokens } from './stage-worker-protocol.ts';

/** Tokenizers kept per worker (each a few MiB for a real vocabulary). */
const KEPT = 4;
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** Reads a model file; `pinned`: its URL names a commit (a copy kept anywhere is the file). */
export type ReadModelFile = (url: string, pinned: boolean) => Promise<Uint8Array>;
/** A model's files: the URL they sit under (ending in `/`), and whether it names a commit. */
export interface ModelFiles {
  base: string;
  pinned: boolean;
}

type TokenizerClass = new (json: object, config: object) => PreTrainedTokenizer;

async function readJson(
  read: (url: string) => Promise<Uint8Array>,
  url: string,
  optional = false,
): Promise<Record<string, unknown> | null> {
  let bytes: Uint8Array;
  try {
    bytes = await read(url);
  } catch (error) {
    if (optional) return null;
    throw error;
  }
  if (bytes.length > MAX_JSON_BYTES) throw new Error(`${url} is over ${MAX_JSON_BYTES} bytes`);
  const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${url} is not a JSON object`);
  return value as Record<string, unknown>;
}

interface Loaded {
  tokenizer: PreTrainedTokenizer;
  eos: number[];
}

export function stageTokenizers(read: ReadModelFile) {
  const kept = new Map<string, Promise<Loaded>>();

  async function load({ base, pinned }: ModelFiles): Promise<Loaded> {
    const fetchFile = (url: string) => read(url, pinned);
    const [json, config, generation] = await Promise.all([
      readJson(fetchFile, `${base}tokenizer.json`),
      readJson(fetchFile, `${base}tokenizer_config.json`),
      readJson(fetchFile, `${base}generation_config.json`, true),
    ]);
    // As AutoTokenizer picks it: the class tokenizer_config.json names, else the generic one.
    const name = typeof config?.tokenizer_class === 'string' ? config.tokenizer_class.replace(/Fast$/, '') : '';
    const named = (transformers as unknown as Record<string, unknown>)[name];
    const Class: TokenizerClass =
      typeof named === 'function' &&
      (named === PreTrainedTokenizer || (named as { prototype: unknown }).prototype instanceof PreTrainedTokenizer)
        ? (named as TokenizerClass)
        : PreTrainedTokenizer;
    const tokenizer = new Class(json ?? {}, config ?? {});
    // The engine's end tokens.
    return { tokenizer, eos: [...endTokens(tokenizer, generation)] };
  }

  function tokenizerAt(files: ModelFiles): Promise<Loaded> {
    const { base } = files;
    let loading = kept.get(base);
    if (!loading) {
      loading = load(files);
      loading.catch(() => kept.delete(base));
      if (kept.size >= KEPT) kept.delete(kept.keys().next().value as string);
    } else kept.delete(base);
    kept.set(base, loading);
    return loading;
  }

  /** The text of token ids, once the tokenizer is loaded: for a decode per token (src/shared/text-deltas.ts). */
  async function decoder(files: ModelFiles): Promise<(ids: number[]) => string> {
    const { tokenizer } = await tokenizerAt(files);
    return (ids) => (ids.length === 0 ? '' : tokenizer.decode(ids, { skip_special_tokens: true }));
  }

  return {
    /**
     * The prompt's ids for `messages` with the model's chat template (the generation prompt added); with `fit`, the
     * oldest turns left out until the prompt and the answer fit the context (fitPrompt, as the engine fits them).
     */
    async tokenize(
      files: ModelFiles,
      messages: EngineMessage[],
      fit?: { context: number; maxNewTokens: number },
    ): Promise<{ ids: number[]; eos: number[]; fitted?: FittedTokens }> {
      const { tokenizer, eos } = await tokenizerAt(files);
      if (!fit) return { ids: [...promptIds(tokenizer, messages)], eos };
      const { ids, trimmed, maxNewTokens } = fitPrompt(tokenizer, messages, fit);
      return { ids: [...ids], eos, fitted: { trimmed, maxNewTokens } };
    },
    async detokenize(files: ModelFiles, ids: number[]): Promise<string> {
      return (await decoder(files))(ids);
    },
    decoder,
  };
}
