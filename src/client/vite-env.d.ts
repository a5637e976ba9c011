/// <reference types="vite/client" />
/// <reference types="vite-plugin-pwa/client" />

/** Set by vite.config.ts: `/ort/<onnxruntime-web version>/`. */
declare const __ORT_WASM_BASE__: string;
/** Set by vite.config.ts: the build's stamp (MESH_BUILD_ID or the build time). */
declare const __APP_BUILD__: string;
