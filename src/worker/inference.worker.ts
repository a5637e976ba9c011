// The Web Worker shell around the engine: models come from this origin's /models/ route and ONNX Runtime's
// WASM files from the app's own versioned /ort/ folder, never a CDN (offline use depends on both). The same worker
// hosts browser stages of a pipeline (`stage-*` messages, docs/pipeline.md) on the same ONNX Runtime.
import { InferenceEngine } from './engine.ts';
import { createEngineHost } from './engine-host.ts';
import { OutputArrays } from './output-arrays.ts';
import { createStageWorkerHost } from './stage-worker-host.ts';
import { startOnnxRuntime } from './runtime-start.ts';
import { openWebStage } from './web-stage-session.ts';
import { STAGE_REQUEST_TYPES } from '../shared/pipeline/stage-worker-protocol.ts';

declare const self: DedicatedWorkerGlobalScope;
/** Set by vite.config.ts: `/ort/<onnxruntime-web version>/`. */
declare const __ORT_WASM_BASE__: string;

const modelHost = new URL('/models/', self.location.origin).href;
const wasmPaths = new URL(__ORT_WASM_BASE__, self.location.origin).href;
// ONNX Runtime Web's output tensors on reused memory during the engine's runs (output-arrays.ts).
const outputArrays = new OutputArrays();
outputArrays.install();
const engine = new InferenceEngine({
  modelHost,
  wasmPaths,
  // The app keeps model files in its own cache (the service worker serves them); a second copy would double the storage.
  browserCache: false,
  // ONNX Runtime's WebAssembly starts with each load (once per worker), alongside the model files.
  startRuntime: () => startOnnxRuntime(wasmPaths),
  outputArrays,
});
const handle = createEngineHost(engine, (reply) => self.postMessage(reply));
// A stage's session waits for the same start: a WebGPU one made while it runs would start the WebAssembly twice.
const handleStage = createStageWorkerHost(
  {
    modelHost,
    wasmPaths,
    open: (graph, options) => startOnnxRuntime(wasmPaths).then(() => openWebStage(graph, options)),
  },
  (reply) => self.postMessage(reply),
);
self.addEventListener('message', (event: MessageEvent<unknown>) => {
  const type = (event.data as { type?: unknown } | null)?.type;
  void (typeof type === 'string' && STAGE_REQUEST_TYPES.has(type) ? handleStage(event.data) : handle(event.data));
});
