// The app's one inference worker (module worker, bundled by Vite) behind the promise-based client.
import { EngineClient } from '../../shared/engine-client.ts';

let client: EngineClient | null = null;

export function inferenceEngine(): EngineClient {
  client ??= new EngineClient(
    new Worker(new URL('../../worker/inference.worker.ts', import.meta.url), { type: 'module', name: 'inference' }),
  );
  return client;
}
