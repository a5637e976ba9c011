// Browser stages in the inference worker: `stage-*` requests open a model's stage (its graph, and external data,
// read from this device's model cache or else the server's /models/ route, the verified download proxy), run it
// and release it (docs/pipeline.md, "Browser stages"). Runs one stage at a time: ONNX Runtime Web runs one graph
// at a time, and the app's engine gate (on the main thread) keeps chat and stages apart.
import { z } from 'zod';
import { isCommitSha } from '../shared/schemas/models.ts';
import { StageManifestSchema, stageFilePath } from '../shared/pipeline/stage-manifest.ts';
import type { StageSession } from '../shared/pipeline/stage-session.ts';
import {
  STAGE_WORKER_LIMITS,
  type StageFileSource,
  type StageWorkerErrorCode,
  type StageWorkerReply,
  StageWorkerRequestSchema,
} from '../shared/pipeline/stage-worker-protocol.ts';
import { ContextOverflowError } from '../shared/chat-template.ts';
import { stageTokenizers } from '../shared/pipeline/stage-tokenizer.ts';
import { TextDeltas } from '../shared/text-deltas.ts';
import { openWebStage } from './web-stage-session.ts';

/** The Cache API cache the app saves model files to (src/client/lib/device-cache.ts), under their /models/ URLs. */
export const MODEL_CACHE_NAME = 'mesh-models';
const MAX_MANIFEST_BYTES = 1024 * 1024;
type ParsedRequest = z.output<typeof StageWorkerRequestSchema>;

interface CacheLike {
  match(url: string, options?: { ignoreVary?: boolean }): Promise<Response | undefined>;
}
interface CachesLike {
  open(name: string): Promise<CacheLike>;
}

export interface StageWorkerOptions {
  /** Absolute URL of the server's model route, ending in `/models/`. */
  modelHost: string;
  wasmPaths?: string;
  /** Opens a stage graph; onnxruntime-web's by default. */
  open?: typeof openWebStage;
}

class StageWorkerError extends Error {
  constructor(
    readonly code: StageWorkerErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const loadFailed = (error: unknown): never => {
  if (error instanceof StageWorkerError) throw error;
  throw new StageWorkerError('LOAD_FAILED', `the tokenizer: ${error instanceof Error ? error.message : String(error)}`);
};

export function createStageWorkerHost(options: StageWorkerOptions, post: (reply: StageWorkerReply) => void) {
  const stages = new Map<string, StageSession>();
  let queue: Promise<unknown> = Promise.resolve();
  /** One graph at a time, in arrival order. */
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  };
  const open = options.open ?? openWebStage;

  async function readFile(url: string, pinned: boolean): Promise<{ bytes: Uint8Array; source: StageFileSource }> {
    const caches = (globalThis as { caches?: CachesLike }).caches;
    // Commit-pinned URLs never change, so a copy on the device is the file (what makes stages load offline).
    const kept = pinned && caches ? await (await caches.open(MODEL_CACHE_NAME)).match(url, { ignoreVary: true }) : null;
    const response = kept ?? (await fetch(url));
    if (!response.ok) throw new StageWorkerError('LOAD_FAILED', `${url} answered ${response.status}`);
    return { bytes: new Uint8Array(await response.arrayBuffer()), source: kept ? 'device' : 'server' };
  }

  const tokenizers = stageTokenizers(async (url, pinned) => (await readFile(url, pinned)).bytes);
  const modelBase = (model: { repo: string; revision: string }) => ({
    base: `${options.modelHost}${model.repo}/resolve/${model.revision}/`,
    pinned: isCommitSha(model.revision),
  });
  /** Answers' texts as their tokens come (`stage-text-deltas`), by stream, the least recently used first. */
  const texts = new Map<string, { base: string; deltas: TextDeltas }>();

  /** The text `ids` complete in the answer `streamId`, which must hold `from` ids already (or start at 0). */
  async function textDeltas(request: Extract<ParsedRequest, { type: 'stage-text-deltas' }>): Promise<string> {
    const files = modelBase(request.model);
    const decode = await tokenizers.decoder(files).catch(loadFailed);
    let text = texts.get(request.streamId);
    texts.delete(request.streamId);
    if (request.from === 0) text = { base: files.base, deltas: new TextDeltas(decode) };
    const held = text?.base === files.base ? text.deltas.ids.length : null;
    if (!text || held !== request.from)
      throw new StageWorkerError(
        'INVALID_REQUEST',
        `answer text ${request.streamId} holds ${held ?? 'no'} tokens of this model here, not ${request.from}`,
      );
    let out = '';
    for (const id of request.ids) out += text.deltas.push(id);
    if (request.end) return out + text.deltas.rest();
    texts.set(request.streamId, text);
    // An answer stopped without its last request is forgotten once enough others came after it.
    if (texts.size > STAGE_WORKER_LIMITS.textStreams) texts.delete(texts.keys().next().value as string);
    return out;
  }

  async function handle(raw: unknown): Promise<StageWorkerReply> {
    const parsed = StageWorkerRequestSchema.safeParse(raw);
    if (!parsed.success) throw new StageWorkerError('INVALID_REQUEST', z.prettifyError(parsed.error));
    const request = parsed.data;
    const { requestId } = request;
    switch (request.type) {
      case 'stage-open': {
        if (stages.has(request.stageId))
          throw new StageWorkerError('INVALID_REQUEST', `stage ${request.stageId} is open already`);
        if (stages.size >= STAGE_WORKER_LIMITS.stages)
          throw new StageWorkerError('TOO_MANY_STAGES', `a worker holds at most ${STAGE_WORKER_LIMITS.stages} stages`);
        const started = performance.now();
        const { repo, revision } = request.model;
        const base = `${options.modelHost}${repo}/resolve/${revision}/`;
        const pinned = isCommitSha(revision);
        const files: Record<string, StageFileSource> = {};
        const manifestFile = await readFile(base + request.manifest, pinned);
        files[request.manifest] = manifestFile.source;
        if (manifestFile.bytes.length > MAX_MANIFEST_BYTES)
          throw new StageWorkerError('LOAD_FAILED', `${request.manifest} is over ${MAX_MANIFEST_BYTES} bytes`);
        let json: unknown;
        try {
          json = JSON.parse(new TextDecoder().decode(manifestFile.bytes));
        } catch {
          throw new StageWorkerError('LOAD_FAILED', `${request.manifest} is not JSON`);
        }
        const manifest = StageManifestSchema.safeParse(json);
        if (!manifest.success)
          throw new StageWorkerError('LOAD_FAILED', `${request.manifest}: ${z.prettifyError(manifest.error)}`);
        const stage = manifest.data.stages[request.index];
        if (!stage)
          throw new StageWorkerError(
            'INVALID_REQUEST',
            `${request.manifest} has ${manifest.data.stages.length} stages, not a stage ${request.index}`,
          );
        const graphPath = stageFilePath(request.manifest, stage.file);
        const graph = await readFile(base + graphPath, pinned);
        files[graphPath] = graph.source;
        let externalData: { path: string; data: Uint8Array } | undefined;
        if (stage.data) {
          const dataPath = stageFilePath(request.manifest, stage.data);
          const data = await readFile(base + dataPath, pinned);
          files[dataPath] = data.source;
          externalData = { path: stage.data, data: data.bytes };
        }
        const session = await serial(() =>
          open(graph.bytes, { backend: request.backend, wasmPaths: options.wasmPaths, externalData }),
        ).catch((error: unknown) => {
          throw new StageWorkerError('LOAD_FAILED', error instanceof Error ? error.message : String(error));
        });
        // Another request may have taken the name or the last place meanwhile.
        if (stages.has(request.stageId) || stages.size >= STAGE_WORKER_LIMITS.stages) {
          await session.release();
          throw new StageWorkerError('TOO_MANY_STAGES', `stage ${request.stageId} could not be kept`);
        }
        stages.set(request.stageId, session);
        return {
          type: 'stage-ready',
          requestId,
          stageId: request.stageId,
          layers: stage.layers,
          backend: session.backend,
          reason: session.reason,
          inputs: session.inputs.map((i) => ({ name: i.name, shape: [...i.shape] })),
          outputs: session.outputs.map((o) => ({ name: o.name, shape: [...o.shape] })),
          files,
          loadMs: Math.round(performance.now() - started),
        };
      }
      case 'stage-run': {
        const session = stages.get(request.stageId);
        if (!session) throw new StageWorkerError('UNKNOWN_STAGE', `no stage ${request.stageId} is open`);
        const outputs = await serial(() => session.run(request.feeds)).catch((error: unknown) => {
          throw new StageWorkerError('RUN_FAILED', error instanceof Error ? error.message : String(error));
        });
        return { type: 'stage-result', requestId, outputs };
      }
      case 'stage-release': {
        const session = stages.get(request.stageId);
        if (!session) throw new StageWorkerError('UNKNOWN_STAGE', `no stage ${request.stageId} is open`);
        stages.delete(request.stageId);
        await serial(() => session.release());
        return { type: 'stage-released', requestId };
      }
      case 'stage-tokenize': {
        const tokens = await tokenizers
          .tokenize(modelBase(request.model), request.messages, request.fit)
          .catch((error: unknown) => {
            if (!(error instanceof ContextOverflowError)) return loadFailed(error);
            throw new StageWorkerError(
              'CONTEXT_OVERFLOW',
              `This message is ${error.promptTokens} tokens long and the model holds ${error.context} tokens of context: shorten it to leave room for an answer`,
            );
          });
        return { type: 'stage-tokens', requestId, ...tokens };
      }
      case 'stage-detokenize': {
        const text = await tokenizers.detokenize(modelBase(request.model), request.ids).catch(loadFailed);
        return { type: 'stage-text', requestId, text };
      }
      case 'stage-text-deltas':
        return { type: 'stage-text', requestId, text: await textDeltas(request) };
      default: {
        const unreachable: never = request;
        throw new Error(`Unknown request ${JSON.stringify(unreachable)}`);
      }
    }
  }

  return async function handleStageRequest(raw: unknown): Promise<void> {
    try {
      post(await handle(raw));
    } catch (error) {
      const requestId = (raw as { requestId?: unknown } | null)?.requestId;
      post({
        type: 'stage-error',
        requestId: typeof requestId === 'string' ? requestId.slice(0, 64) : 'unknown',
        code: error instanceof StageWorkerError ? error.code : 'RUN_FAILED',
        message: error instanceof Error ? error.message : String(error),
      });
    }
  };
}
