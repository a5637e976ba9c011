// The Web Worker shell around the engine: models come from this origin's /models/ route and ONNX Runtime's
// WASM files from the app's own versioned /ort/ folder, never a CDN (offline use depends on both).
import { InferenceEngine } from './engine.ts';
import { createEngineHost } from './engine-host.ts';

declare const self: DedicatedWorkerGlobalScope;
/** Set by vite.config.ts: `/ort/<onnxruntime-web version>/`. */
declare const __ORT_WASM_BASE__: string;

const engine = new InferenceEngine({
  modelHost: new URL('/models/', self.location.origin).href,
  wasmPaths: new URL(__ORT_WASM_BASE__, self.location.origin).href,
  // The app keeps model files in its own cache (the service worker serves them); a second copy would double the storage.
  browserCache: false,
});
const handle = createEngineHost(engine, (reply) => self.postMessage(reply));
self.addEventListener('message', (event: MessageEvent<unknown>) => void handle(event.data));
