import { createReadStream, readFileSync } from 'node:fs';
import path from 'node:path';
import react from '@vitejs/plugin-react';
import { type Plugin, defaultClientConditions, defineConfig } from 'vite';

const ORT_DIST = path.resolve(import.meta.dirname, 'node_modules/onnxruntime-web/dist');
const ORT_VERSION = (JSON.parse(readFileSync(path.resolve(ORT_DIST, '../package.json'), 'utf8')) as { version: string }).version;
/** Versioned, so the server can mark the files immutable and a new ONNX Runtime gets new URLs. */
export const ORT_WASM_BASE = `/ort/${ORT_VERSION}/`;
/**
 * Only the variants transformers.js' web build loads: asyncify for `device: 'wasm'`, JSEP for `device: 'webgpu'`
 * (14 to 28 MB each, so not the other four).
 */
const ORT_FILES = ['ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];

/** Serves ONNX Runtime's WASM files from the app itself: transformers.js would fetch them from a CDN otherwise. */
function onnxRuntimeFiles(): Plugin {
  return {
    name: 'mesh:onnxruntime-files',
    configureServer(server) {
      server.middlewares.use(ORT_WASM_BASE, (req, res, next) => {
        const file = (req.url ?? '').split('?')[0]?.replace(/^\//, '') ?? '';
        if (!ORT_FILES.includes(file)) return next();
        res.setHeader('content-type', file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript');
        createReadStream(path.join(ORT_DIST, file)).pipe(res);
      });
    },
    generateBundle() {
      for (const file of ORT_FILES) {
        this.emitFile({ type: 'asset', fileName: `${ORT_WASM_BASE.slice(1)}${file}`, source: readFileSync(path.join(ORT_DIST, file)) });
      }
    },
  };
}

export default defineConfig({
  plugins: [react(), onnxRuntimeFiles()],
  define: { __ORT_WASM_BASE__: JSON.stringify(ORT_WASM_BASE) },
  // ONNX Runtime's "extern wasm" build loads its glue and .wasm from `wasmPaths` only; the default build would
  // also make Vite emit a second, hashed 27 MB copy of the WASM file into assets/.
  resolve: { conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions] },
  worker: { format: 'es' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    // transformers.js and ONNX Runtime's glue are large by nature; they load in the worker, off the main thread.
    chunkSizeWarningLimit: 2048,
  },
});
