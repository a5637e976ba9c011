// The engine behind the worker protocol without a thread, for Node (the headless peer and the tests): messages are
// structured-cloned both ways, as postMessage would, so the client wrapper and the host run exactly as in a browser.
import type { EngineWorkerLike } from '../shared/engine-client.ts';
import type { EngineReply } from '../shared/engine-protocol.ts';
import type { InferenceEngine } from './engine.ts';
import { createEngineHost } from './engine-host.ts';

export function inProcessWorker(engine: InferenceEngine): EngineWorkerLike & { sendRaw(message: unknown): void } {
  const listeners: ((event: { data: EngineReply }) => void)[] = [];
  const handle = createEngineHost(engine, (reply) => {
    const data = structuredClone(reply);
    setImmediate(() => listeners.forEach((listener) => listener({ data })));
  });
  return {
    postMessage: (message) => void handle(structuredClone(message)),
    sendRaw: (message) => void handle(structuredClone(message)),
    addEventListener: (type: 'message' | 'error', listener: (event: never) => void) => {
      if (type === 'message') listeners.push(listener as (event: { data: EngineReply }) => void);
    },
    terminate: () => void engine.unload(),
  };
}
