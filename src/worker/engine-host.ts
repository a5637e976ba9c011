// Speaks the engine protocol over any message port: the Web Worker shell in browsers, an in-process port in Node.
// Requests are schema-checked on arrival; every failure becomes an `error` reply with a code.
import { z } from 'zod';
import { type EngineReply, EngineRequestSchema } from '../shared/engine-protocol.ts';
import { EngineError, type InferenceEngine } from './engine.ts';

function errorReply(requestId: string, error: unknown): EngineReply {
  if (error instanceof EngineError) return { type: 'error', requestId, code: error.code, message: error.message };
  return {
    type: 'error',
    requestId,
    code: 'GENERATION_FAILED',
    message: error instanceof Error ? error.message : String(error),
  };
}

export function createEngineHost(engine: InferenceEngine, post: (reply: EngineReply) => void) {
  return async function handle(raw: unknown): Promise<void> {
    const parsed = EngineRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const requestId = (raw as { requestId?: unknown } | null)?.requestId;
      post({
        type: 'error',
        requestId: typeof requestId === 'string' ? requestId.slice(0, 64) : 'unknown',
        code: 'INVALID_REQUEST',
        message: z.prettifyError(parsed.error),
      });
      return;
    }
    const request = parsed.data;
    const { requestId } = request;
    try {
      switch (request.type) {
        case 'load': {
          const info = await engine.load(
            request.model,
            request.backend,
            (progress) => post({ type: 'progress', requestId, ...progress }),
            request.threads === undefined ? {} : { threads: request.threads },
          );
          post({ type: 'ready', requestId, ...info });
          return;
        }
        case 'generate': {
          const result = await engine.generate(
            request.messages,
            request.sampling,
            ({ index, tokenId, text }) => post({ type: 'token', requestId, index, tokenId, text }),
            request.prefix,
          );
          post({ type: 'complete', requestId, ...result });
          return;
        }
        case 'interrupt':
          engine.interrupt();
          return;
        case 'reset':
          await engine.reset();
          return;
        default: {
          const unreachable: never = request;
          throw new Error(`Unknown request ${JSON.stringify(unreachable)}`);
        }
      }
    } catch (error) {
      post(errorReply(requestId, error));
    }
  };
}
