// The inference engine over transformers.js: the same code runs in a browser Web Worker (WebGPU or WASM) and in
// Node (onnxruntime-node) for the headless peer and the tests. No DOM here.
// It runs past the 300 lines CONTRIBUTING.md asks for because loading (backend plan, progress, fallback to WASM) and
// generating (fitting the prompt, sampling, streaming, continuing from a prefix) share one loaded model and its
// transformers.js objects; what stands alone is in backend.ts, sampling.ts and token-streamer.ts.
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  type DynamicCache,
  InterruptableStoppingCriteria,
  LogitsProcessorList,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  type ProgressInfo,
  Tensor,
  type TextStreamer,
  env,
} from '@huggingface/transformers';
import type {
  Backend,
  BackendPreference,
  EngineErrorCode,
  EngineMessage,
  EngineModel,
  FileProgress,
  GenerationStats,
  LoadPhase,
  LoadedInfo,
  Sampling,
} from '../shared/engine-protocol.ts';
import { type BackendPlan, type GpuLike, browserGpu, planBackend } from './backend.ts';
import { ContextOverflowError, type FittedPrompt, endTokens, fitPrompt } from '../shared/chat-template.ts';
import type { OutputArrays, SessionLike } from './output-arrays.ts';
import { NoEmptyAnswer, SeededSampler } from './sampling.ts';
import { type StreamedToken, TokenStreamer } from './token-streamer.ts';

export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

export interface EngineOptions {
  /** Absolute URL of the server's model route, ending in `/models/`. */
  modelHost: string;
  /**
   * Node: headers for the model route's requests, asked at each one: a headless peer's session cookie, without which
   * the server serves a model an account added for itself to no one (docs/SECURITY.md). A browser sends its cookie
   * itself (same origin). Like the pinning below, they ride on transformers.js' one global `env.fetch`: engines of
   * one process loading at once share the last load's, which suits one peer (or one account's peers) a process.
   */
  headers?: () => Record<string, string>;
  /** Browser: where ONNX Runtime's .wasm/.mjs files are served by the app itself (never a CDN). */
  wasmPaths?: string;
  /** Node: onnxruntime-node reads files from disk, so remote files pass through this cache directory. */
  cacheDir?: string;
  /** Browser: keep downloaded files in the Cache API (default true). */
  browserCache?: boolean;
  /** WebGPU entry point; defaults to `navigator.gpu`. */
  gpu?: GpuLike | null;
  /**
   * ONNX Runtime threads. Node: per operator (default: its own choice, every core; several peers on one machine want
   * fewer). Browser: ONNX Runtime Web's WebAssembly threads (default: half the cores, up to 4, when the page is
   * cross-origin isolated, else 1), fixed when the runtime starts (the worker's first load). A load may override it.
   */
  threads?: number;
  /** Run a two-token answer before saying Ready (default true), so the first real answer is not the slow one. */
  warmUp?: boolean;
  /**
   * Browser: starts ONNX Runtime's WebAssembly (fetch, compile, init) when a load begins, alongside the model files
   * (runtime-start.ts); never rejects. Node has nothing to start: onnxruntime-node is native.
   */
  startRuntime?: () => Promise<void>;
  /**
   * Browser: reused memory for ONNX Runtime Web's output tensors (output-arrays.ts), installed by the worker. Each
   * loaded model's sessions run through it.
   */
  outputArrays?: OutputArrays;
}

export interface LoadProgress {
  phase: LoadPhase;
  message: string;
  files: Record<string, FileProgress>;
  loaded: number;
  total: number;
}

export interface GenerationResult extends GenerationStats {
  text: string;
  tokenIds: number[];
}

interface Loaded {
  info: LoadedInfo;
  model: PreTrainedModel;
  tokenizer: PreTrainedTokenizer;
  eos: Set<number>;
}

const PROGRESS_INTERVAL_MS = 100;

const BACKEND_NAME: Record<Backend, string> = { webgpu: 'WebGPU', wasm: 'WASM', cpu: 'the CPU (onnxruntime-node)' };

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class InferenceEngine {
  private current: Loaded | null = null;
  /** Keys and values of the last conversation, and the token ids they cover. */
  private cache: { ids: number[]; past: DynamicCache } | null = null;
  private stopper: InterruptableStoppingCriteria | null = null;
  private running: Promise<unknown> | null = null;
  /** Browser: ONNX Runtime Web's start has begun, which fixed its thread count. */
  private runtimeStarted = false;

  constructor(private readonly options: EngineOptions) {}

  get loaded(): LoadedInfo | null {
    return this.current?.info ?? null;
  }

  private configure(model: EngineModel): void {
    // transformers.js 4.3.1 checks that tokenizer_config.json exists at revision `main` whatever revision it was
    // given (get_tokenizer_files drops it). Pin every request for this model to its commit: the files are
    // immutable there, and offline the service worker only holds commit URLs.
    const unpinned = `${this.options.modelHost}${model.repo}/resolve/main/`;
    const pinned = `${this.options.modelHost}${model.repo}/resolve/${model.revision}/`;
    const extra = this.options.headers;
    env.fetch = (input: string | URL, init?: RequestInit) => {
      const url = String(input);
      const target = url.startsWith(unpinned) ? pinned + url.slice(unpinned.length) : url;
      if (!extra || !target.startsWith(this.options.modelHost)) return fetch(target, init);
      const headers = new Headers(init?.headers);
      for (const [name, value] of Object.entries(extra())) headers.set(name, value);
      return fetch(target, { ...init, headers });
    };
    env.allowLocalModels = false;
    env.allowRemoteModels = true;
    env.remoteHost = this.options.modelHost;
    env.remotePathTemplate = '{model}/resolve/{revision}/';
    if (this.options.cacheDir) {
      env.useFSCache = true;
      env.cacheDir = this.options.cacheDir;
    }
    if (this.options.browserCache !== undefined) env.useBrowserCache = this.options.browserCache;
    if (this.options.wasmPaths && env.backends.onnx.wasm) env.backends.onnx.wasm.wasmPaths = this.options.wasmPaths;
  }

  /** Loads `model` (replacing the loaded one), reporting phases Fetching, Preparing, Downloading, Loading, Ready. */
  async load(
    model: EngineModel,
    preference: BackendPreference,
    onProgress: (progress: LoadProgress) => void,
    { threads = this.options.threads }: { threads?: number } = {},
  ): Promise<LoadedInfo> {
    this.interrupt();
    await this.running?.catch(() => undefined);
    await this.unload();
    this.configure(model);
    // ONNX Runtime Web reads this once, when its WebAssembly starts (the first load's startRuntime); from then on it
    // holds the count in use, which Ready reports. onnxruntime-node takes its threads per session (loadModel).
    const wasm = env.backends.onnx.wasm;
    if (threads && wasm && this.options.startRuntime && !this.runtimeStarted) wasm.numThreads = threads;
    const started = performance.now();
    const runtime = this.options.startRuntime?.();
    this.runtimeStarted ||= runtime !== undefined;
    const files: Record<string, FileProgress> = {};
    let phase: LoadPhase = 'Fetching';
    let message = 'Fetching the tokenizer and configuration';
    let lastSent = 0;
    const send = (force: boolean) => {
      const now = performance.now();
      if (!force && now - lastSent < PROGRESS_INTERVAL_MS) return;
      lastSent = now;
      const values = Object.values(files);
      onProgress({
        phase,
        message,
        files: structuredClone(files),
        loaded: values.reduce((n, f) => n + f.loaded, 0),
        total: values.reduce((n, f) => n + f.total, 0),
      });
    };
    const enter = (next: LoadPhase, words: string) => {
      phase = next;
      message = words;
      send(true);
    };
    const weights = (file: string) => file.endsWith('.onnx') || file.endsWith('.onnx_data');
    const track = (backend?: Backend) => (info: ProgressInfo) => {
      if (!('file' in info)) return;
      const entry = (files[info.file] ??= { loaded: 0, total: 0 });
      if (info.status === 'progress') {
        entry.loaded = info.loaded;
        entry.total = info.total;
      } else if (info.status === 'done') {
        entry.loaded = Math.max(entry.loaded, entry.total);
      }
      if (backend && weights(info.file)) {
        const pending = Object.entries(files).some(
          ([name, f]) => weights(name) && (f.total === 0 || f.loaded < f.total),
        );
        if (info.status === 'done' && !pending) {
          enter('Loading', `Loading the model on ${BACKEND_NAME[backend]}`);
          return;
        }
        if (phase !== 'Downloading' && info.status !== 'done') {
          enter('Downloading', 'Downloading model weights');
          return;
        }
      }
      send(info.status === 'done');
    };

    try {
      send(true);
      const tokenizer = await AutoTokenizer.from_pretrained(model.repo, {
        revision: model.revision,
        progress_callback: track(),
      });
      enter('Preparing', 'Choosing a backend');
      let plan = await planBackend(model, preference, this.options.gpu === undefined ? browserGpu() : this.options.gpu);
      enter('Preparing', `${plan.reason} (${plan.dtype})`);
      // A WASM session joins the early start's initialisation; a WebGPU one would start the WebAssembly a second
      // time, which ONNX Runtime refuses, so it waits for it (runtime-start.ts).
      if (plan.backend !== 'wasm') await runtime;
      let loadedModel: PreTrainedModel;
      try {
        loadedModel = await this.loadModel(model, plan, track(plan.backend), threads);
      } catch (error) {
        if (plan.backend !== 'webgpu') throw error;
        // A WebGPU that exists but fails (driver, limits, out of memory) must not leave the person without a model.
        plan = {
          backend: 'wasm',
          dtype: model.dtype.wasm,
          reason: `WebGPU failed to load the model (${errorMessage(error)}): fell back to WASM`,
        };
        enter('Preparing', plan.reason);
        loadedModel = await this.loadModel(model, plan, track(plan.backend), threads);
      }
      const outputs = this.options.outputArrays;
      if (outputs) {
        const sessions = (loadedModel as unknown as { sessions?: Record<string, SessionLike> }).sessions ?? {};
        for (const session of Object.values(sessions)) outputs.wrap(session);
      }
      const config = loadedModel.config as { max_position_embeddings?: number };
      const generation = loadedModel.generation_config as { eos_token_id?: number | number[] } | null;
      const eos = endTokens(tokenizer, generation);
      const info: LoadedInfo = {
        model: model.id,
        backend: plan.backend,
        dtype: plan.dtype,
        reason: plan.reason,
        contextLength: Math.min(model.contextLength, config.max_position_embeddings ?? Infinity),
        loadMs: Math.round(performance.now() - started),
        warmUpMs: 0,
        ...(plan.backend === 'wasm' && wasm?.numThreads ? { threads: wasm.numThreads } : {}),
      };
      this.current = { info, model: loadedModel, tokenizer, eos };
      if (this.options.warmUp !== false) {
        enter('Loading', `Warming up on ${BACKEND_NAME[plan.backend]}`);
        const warming = performance.now();
        await this.warmUp();
        info.warmUpMs = Math.round((performance.now() - warming) * 10) / 10;
        info.loadMs = Math.round(performance.now() - started);
      }
      enter('Ready', `Ready on ${BACKEND_NAME[plan.backend]}`);
      return info;
    } catch (error) {
      if (error instanceof EngineError) throw error;
      throw new EngineError('LOAD_FAILED', `Could not load ${model.id}: ${errorMessage(error)}`);
    }
  }

  private async loadModel(
    model: EngineModel,
    plan: BackendPlan,
    progress: (info: ProgressInfo) => void,
    threads: number | undefined,
  ) {
    return AutoModelForCausalLM.from_pretrained(model.repo, {
      revision: model.revision,
      dtype: plan.dtype,
      device: plan.backend,
      progress_callback: progress,
      ...(threads && plan.backend === 'cpu'
        ? { session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 } }
        : {}),
    });
  }

  /**
   * The first run of a session is slower than the rest: ONNX Runtime sizes its buffers and, on WebGPU, compiles its
   * shaders then. A two-token answer (a prefill, then one step with the KV cache) pays that here, while the person
   * already waits for the load, not on their first answer (bench/README.md, "Browser engine speed"). Its cache is
   * dropped: it is no one's conversation.
   */
  private async warmUp(): Promise<void> {
    await this.generate([{ role: 'user', content: 'Hello' }], { temperature: 0, topP: 1, maxNewTokens: 2 }, () => {});
    await this.reset();
  }

  /** Chat template, then the oldest turns dropped until prompt and answer fit the context (fitPrompt). */
  private fitPrompt(loaded: Loaded, messages: EngineMessage[], maxNewTokens: number): FittedPrompt {
    const context = loaded.info.contextLength;
    try {
      return fitPrompt(loaded.tokenizer, messages, { context, maxNewTokens });
    } catch (error) {
      if (!(error instanceof ContextOverflowError)) throw error;
      throw new EngineError(
        'CONTEXT_OVERFLOW',
        `This message is ${error.promptTokens} tokens long and ${loaded.info.model} holds ${context} tokens of context: shorten it to leave room for an answer`,
      );
    }
  }

  /**
   * Generates an answer to the conversation `messages` (the full history, oldest first), calling `onToken` for
   * each token as it is made. The previous turn's KV cache is reused when the new prompt extends it.
   *
   * `prefix`: answer tokens already made elsewhere (a job resumed on another peer). Generation continues after
   * them, token indexes and texts exactly as one uninterrupted run would have given (the seeded draw depends on
   * the position only); `maxNewTokens` counts them.
   */
  async generate(
    messages: EngineMessage[],
    sampling: Sampling,
    onToken: (token: StreamedToken) => void,
    prefix: readonly number[] = [],
  ): Promise<GenerationResult> {
    const loaded = this.current;
    if (!loaded) throw new EngineError('NOT_LOADED', 'No model is loaded: load one first');
    if (this.running) throw new EngineError('BUSY', 'The engine is already generating an answer');
    if (prefix.length >= sampling.maxNewTokens)
      throw new EngineError(
        'INVALID_REQUEST',
        `A prefix of ${prefix.length} tokens leaves nothing of ${sampling.maxNewTokens} new tokens to make`,
      );
    const run = this.run(loaded, messages, sampling, onToken, prefix);
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = null;
      this.stopper = null;
    }
  }

  private async run(
    loaded: Loaded,
    messages: EngineMessage[],
    sampling: Sampling,
    onToken: (token: StreamedToken) => void,
    prefix: readonly number[],
  ): Promise<GenerationResult> {
    const started = performance.now();
    const fitted = this.fitPrompt(loaded, messages, sampling.maxNewTokens);
    const { trimmed } = fitted;
    const ids = [...fitted.ids, ...prefix];
    const maxNewTokens = fitted.maxNewTokens - prefix.length;
    const cached = this.cache;
    this.cache = null;
    const reuse = cached !== null && cached.ids.length < ids.length && cached.ids.every((id, i) => id === ids[i]);
    if (cached && !reuse) await cached.past.dispose();

    const stopper = new InterruptableStoppingCriteria();
    this.stopper = stopper;
    let first = 0;
    let last = 0;
    const streamer = new TokenStreamer(loaded.tokenizer, prefix, (token) => {
      if (token.index === prefix.length) first = token.at;
      last = token.at;
      onToken(token);
    });
    const processors = new LogitsProcessorList();
    processors.push(new NoEmptyAnswer(fitted.ids.length, loaded.eos));
    processors.push(new SeededSampler(sampling, sampling.seed ?? Math.floor(Math.random() * 2 ** 32)));
    const inputIds = new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
    const attentionMask = new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
    let output: { sequences: Tensor; past_key_values: DynamicCache };
    try {
      output = (await loaded.model.generate({
        input_ids: inputIds,
        attention_mask: attentionMask,
        ...(reuse ? { past_key_values: cached.past } : {}),
        max_new_tokens: maxNewTokens,
        // Our sampler decides (seeded, position-keyed); transformers.js' own sampler then only takes its pick.
        do_sample: false,
        logits_processor: processors,
        stopping_criteria: [stopper],
        streamer: streamer as unknown as TextStreamer,
        return_dict_in_generate: true,
      })) as unknown as { sequences: Tensor; past_key_values: DynamicCache };
    } catch (error) {
      throw new EngineError('GENERATION_FAILED', `Generation failed: ${errorMessage(error)}`);
    }
    const all = Array.from(output.sequences.data as BigInt64Array, Number);
    this.cache = { ids: all.slice(0, output.past_key_values.get_seq_length()), past: output.past_key_values };

    const tokenIds = streamer.ids.slice(prefix.length);
    const lastId = streamer.ids.at(-1);
    const reason =
      lastId !== undefined && loaded.eos.has(lastId) ? 'eos' : stopper.interrupted ? 'interrupted' : 'length';
    const end = performance.now();
    return {
      text: streamer.finalText(),
      tokenIds,
      reason,
      promptTokens: fitted.ids.length,
      reusedTokens: reuse ? cached.ids.length : 0,
      completionTokens: tokenIds.length,
      trimmedMessages: trimmed,
      ttftMs: first ? first - started : 0,
      tokensPerSecond: tokenIds.length > 1 && last > first ? ((tokenIds.length - 1) * 1000) / (last - first) : 0,
      totalMs: end - started,
    };
  }

  /** Stops the running generation after the token being computed. */
  interrupt(): void {
    this.stopper?.interrupt();
  }

  /** Forgets the conversation (its KV cache); waits for a running generation to stop first. */
  async reset(): Promise<void> {
    this.interrupt();
    await this.running?.catch(() => undefined);
    const cached = this.cache;
    this.cache = null;
    await cached?.past.dispose();
  }

  async unload(): Promise<void> {
    await this.reset();
    const loaded = this.current;
    this.current = null;
    await loaded?.model.dispose();
    this.options.outputArrays?.clear();
  }
}
