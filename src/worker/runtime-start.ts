// Starts ONNX Runtime Web's WebAssembly (its glue module's import, the 27 MB `.wasm` fetch and compile, OrtInit) when
// a load begins, alongside the tokenizer and model files, instead of after them: transformers.js creates the first
// session, and with it ONNX Runtime, only once the weights have arrived (bench/README.md, issue 19). ONNX Runtime
// has no public init call; creating a session does it, so this creates one of a one-node graph and releases it.
// The import is the one transformers.js makes (`onnxruntime-web/webgpu`), so both share one runtime. Browser only.
import * as ort from 'onnxruntime-web/webgpu';

/**
 * A complete ONNX model (IR 8, opset 17): `y = Identity(x)` over float32[1]. Written with the repository's ONNX
 * writer (scripts/tiny-model/onnx-graph.ts `encodeModel`); tests/runtime-start.test.ts decodes it and runs it.
 */
export const IDENTITY_MODEL_BASE64 =
  'CAg6NwoQCgF4EgF5IghJZGVudGl0eRIBcloPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEBE=';

let started: Promise<void> | null = null;

/**
 * Initialises ONNX Runtime's WASM backend once per worker; later calls return the same promise. Never rejects: a
 * runtime that cannot start fails the model's own session a moment later, with the error the load reports.
 *
 * On the `wasm` backend name only. A session on another (WebGPU) created while this runs would start the same
 * WebAssembly a second time, which ONNX Runtime refuses ("multiple calls to 'initWasm()'"): the engine awaits
 * this before creating a WebGPU session, and the worker's pipeline stages before any session.
 */
export function startOnnxRuntime(wasmPaths?: string): Promise<void> {
  started ??= (async () => {
    if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
    const bytes = Uint8Array.from(atob(IDENTITY_MODEL_BASE64), (c) => c.charCodeAt(0));
    try {
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], logSeverityLevel: 3 });
      await session.release();
    } catch {
      // Reported by the model's own session creation (see above).
    }
  })();
  return started;
}
