// The app's one inference worker (module worker, bundled by Vite) behind the promise-based client.
import { EngineClient } from '../../shared/engine-client.ts';

let client: EngineClient | null = null;

export function inferenceEngine(): EngineClient {
  client ??= new EngineClient(
    new Worker(new URL('../../worker/inference.worker.ts', import.meta.url), { type: 'module', name: 'inference' }),
  );
  return client;
}

/** Ends the worker and everything it holds (the loaded model's memory); the next inferenceEngine() starts afresh. */
export function closeInferenceEngine(): void {
  client?.terminate();
  client = null;
}
