// Turns the engine protocol into promises and an async iterator, so React never posts messages itself:
//   const generation = engine.generate(messages, sampling);
//   for await (const token of generation) render(token.text);
//   const stats = await generation.result;
import type {
  BackendPreference,
  EngineErrorCode,
  EngineMessage,
  EngineModel,
  EngineReply,
  EngineRequest,
  GenerationStats,
  LoadedInfo,
  SamplingInput,
} from './engine-protocol.ts';

/** The part of `Worker` the client uses; an in-process port in Node satisfies it too. */
export interface EngineWorkerLike {
  postMessage(message: EngineRequest): void;
  addEventListener(type: 'message', listener: (event: { data: EngineReply }) => void): void;
  addEventListener(type: 'error', listener: (event: { message?: string }) => void): void;
  terminate(): void;
}

export type EngineClientErrorCode = EngineErrorCode | 'WORKER_CRASHED' | 'TERMINATED';

export class EngineClientError extends Error {
  constructor(
    readonly code: EngineClientErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineClientError';
  }
}

export type LoadProgressEvent = Extract<EngineReply, { type: 'progress' }>;
export type TokenEvent = Omit<Extract<EngineReply, { type: 'token' }>, 'type' | 'requestId'>;
export type GenerationOutcome = GenerationStats & { text: string; tokenIds: number[] };

export interface Generation extends AsyncIterable<TokenEvent> {
  readonly requestId: string;
  /** Settles when the answer is complete (or rejects with the engine's error). */
  readonly result: Promise<GenerationOutcome>;
  /** Stops the generation within one token; `result` then resolves with reason `interrupted`. */
  stop(): void;
}

type Listener = (reply: EngineReply) => void;

export class EngineClient {
  private readonly listeners = new Map<string, Listener>();
  private sequence = 0;
  private failure: EngineClientError | null = null;

  constructor(private readonly worker: EngineWorkerLike) {
    worker.addEventListener('message', (event) => this.listeners.get(event.data.requestId)?.(event.data));
    worker.addEventListener('error', (event) => {
      this.fail(
        new EngineClientError('WORKER_CRASHED', `The inference worker stopped: ${event.message ?? 'unknown error'}`),
      );
    });
  }

  private nextId(kind: string): string {
    return `${kind}-${++this.sequence}`;
  }

  private fail(error: EngineClientError): void {
    this.failure = error;
    const errorReply = (requestId: string): EngineReply => ({
      type: 'error',
      requestId,
      code: 'GENERATION_FAILED',
      message: error.message,
    });
    for (const [requestId, listener] of [...this.listeners]) listener(errorReply(requestId));
    this.listeners.clear();
  }

  private send(request: EngineRequest, listener: Listener): void {
    if (this.failure) throw this.failure;
    this.listeners.set(request.requestId, listener);
    this.worker.postMessage(request);
  }

  private toError(reply: Extract<EngineReply, { type: 'error' }>): EngineClientError {
    return this.failure ?? new EngineClientError(reply.code, reply.message);
  }

  load(
    model: EngineModel,
    options: { backend?: BackendPreference; onProgress?: (progress: LoadProgressEvent) => void } = {},
  ): Promise<LoadedInfo> {
    const requestId = this.nextId('load');
    return new Promise((resolve, reject) => {
      this.send({ type: 'load', requestId, model, backend: options.backend ?? 'auto' }, (reply) => {
        if (reply.type === 'progress') options.onProgress?.(reply);
        else if (reply.type === 'ready') {
          this.listeners.delete(requestId);
          const { type: _type, requestId: _id, ...info } = reply;
          resolve(info);
        } else if (reply.type === 'error') {
          this.listeners.delete(requestId);
          reject(this.toError(reply));
        }
      });
    });
  }

  /** `prefix`: answer tokens already made elsewhere; the generation continues after them (see the engine). */
  generate(messages: EngineMessage[], sampling: SamplingInput = {}, prefix: number[] = []): Generation {
    const requestId = this.nextId('generate');
    const queue: TokenEvent[] = [];
    let wake: (() => void) | null = null;
    let finished = false;
    let resolveResult!: (outcome: GenerationOutcome) => void;
    let rejectResult!: (error: EngineClientError) => void;
    const result = new Promise<GenerationOutcome>((resolve, reject) => {
      resolveResult = resolve;
      rejectResult = reject;
    });
    // A caller that only iterates still sees the error (thrown by the iterator); do not also report it unhandled.
    result.catch(() => undefined);
    const settle = () => {
      finished = true;
      this.listeners.delete(requestId);
      wake?.();
    };
    this.send({ type: 'generate', requestId, messages, sampling, prefix }, (reply) => {
      if (reply.type === 'token') {
        queue.push({ index: reply.index, tokenId: reply.tokenId, text: reply.text });
        wake?.();
      } else if (reply.type === 'complete') {
        const { type: _type, requestId: _id, ...outcome } = reply;
        resolveResult(outcome);
        settle();
      } else if (reply.type === 'error') {
        rejectResult(this.toError(reply));
        settle();
      }
    });
    const stop = () => {
      if (!finished) this.worker.postMessage({ type: 'interrupt', requestId: this.nextId('interrupt') });
    };
    return {
      requestId,
      result,
      stop,
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            const next = queue.shift();
            if (next) {
              yield next;
              continue;
            }
            if (finished) break;
            await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
          }
          await result;
        } finally {
          // Leaving the loop early (break, return, an exception in the body) stops the model too.
          stop();
        }
      },
    };
  }

  /** Interrupts whatever is generating. */
  interrupt(): void {
    this.worker.postMessage({ type: 'interrupt', requestId: this.nextId('interrupt') });
  }

  /** Starts a new conversation: the engine forgets the previous one's cache (messages are handled in order). */
  reset(): void {
    this.worker.postMessage({ type: 'reset', requestId: this.nextId('reset') });
  }

  terminate(): void {
    this.worker.terminate();
    this.fail(new EngineClientError('TERMINATED', 'The inference worker was closed'));
  }
}
