// The one reader of build-time configuration on the client (import.meta.env and Vite defines).

/** `/ort/<onnxruntime-web version>/`, where the app serves ONNX Runtime's WASM files (vite.config.ts). */
export const ORT_WASM_BASE: string = __ORT_WASM_BASE__;
/** ONNX Runtime files per backend: what to keep on the device so a model loads offline. */
export const ORT_FILES = {
  wasm: ['ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'],
  webgpu: ['ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'],
} as const;
export const IS_DEV: boolean = import.meta.env.DEV;
export const APP_BUILD: string = __APP_BUILD__;
