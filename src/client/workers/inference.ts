// The app's one inference worker (module worker, bundled by Vite) behind the promise-based client.
import { EngineClient } from '../../shared/engine-client.ts';
import type { StageWorkerPort } from '../../shared/pipeline/worker-stage-session.ts';

let client: EngineClient | null = null;
let worker: Worker | null = null;

export function inferenceEngine(): EngineClient {
  if (!client) {
    worker = new Worker(new URL('../../worker/inference.worker.ts', import.meta.url), {
      type: 'module',
      name: 'inference',
    });
    client = new EngineClient(worker);
  }
  return client;
}

/** The same worker as a port for its `stage-*` messages (pipeline stages and a pipeline model's tokenizer). */
export function inferenceWorkerPort(): StageWorkerPort {
  inferenceEngine();
  return worker as unknown as StageWorkerPort;
}

/** Ends the worker and everything it holds (the loaded model's memory); the next inferenceEngine() starts afresh. */
export function closeInferenceEngine(): void {
  client?.terminate();
  client = null;
  worker = null;
}
