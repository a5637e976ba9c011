import { createReadStream, readFileSync } from 'node:fs';
import path from 'node:path';
import tailwindcss from '@tailwindcss/vite';
import react from '@vitejs/plugin-react';
import { type Plugin, defaultClientConditions, defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';
import { rewriteOrtOutputs } from './scripts/ort-output-arrays.ts';

const ORT_DIST = path.resolve(import.meta.dirname, 'node_modules/onnxruntime-web/dist');
const ORT_VERSION = (JSON.parse(readFileSync(path.resolve(ORT_DIST, '../package.json'), 'utf8')) as { version: string })
  .version;
/** Versioned, so the server can mark the files immutable and a new ONNX Runtime gets new URLs. */
export const ORT_WASM_BASE = `/ort/${ORT_VERSION}/`;
/**
 * Only the variants transformers.js' web build loads: asyncify for `device: 'wasm'`, JSEP for `device: 'webgpu'`
 * (14 to 28 MB each, so not the other four).
 */
const ORT_FILES = [
  'ort-wasm-simd-threaded.asyncify.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
  'ort-wasm-simd-threaded.jsep.mjs',
  'ort-wasm-simd-threaded.jsep.wasm',
];

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
        this.emitFile({
          type: 'asset',
          fileName: `${ORT_WASM_BASE.slice(1)}${file}`,
          source: readFileSync(path.join(ORT_DIST, file)),
        });
      }
    },
  };
}

/**
 * ONNX Runtime Web copies each output of a run into a new typed array; the worker's build rewrites that line so the
 * inference worker may hand it an array on reused memory (scripts/ort-output-arrays.ts, src/worker/output-arrays.ts).
 */
function ortOutputArrays(): Plugin {
  const file = path.join(ORT_DIST, 'ort.webgpu.min.mjs');
  return {
    name: 'mesh:ort-output-arrays',
    transform(code, id) {
      if (path.resolve(id.split('?')[0] ?? '') !== file) return null;
      try {
        return { code: rewriteOrtOutputs(code, ORT_VERSION), map: null };
      } catch (error) {
        this.error(error instanceof Error ? error.message : String(error));
      }
    },
  };
}

export default defineConfig(({ command }) => ({
  plugins: [
    react(),
    tailwindcss(),
    onnxRuntimeFiles(),
    // The service worker exists only in builds: in development it would cache what hot reload replaces.
    command === 'build' &&
      VitePWA({
        // The app registers the worker itself (src/client/lib/pwa.ts) and asks before switching to a new version.
        registerType: 'prompt',
        injectRegister: false,
        // The icons are in the precache glob already.
        includeManifestIcons: false,
        manifest: {
          name: 'Mesh NanoLLM',
          short_name: 'Mesh NanoLLM',
          description: 'Chat with small language models in your browser, alone or as a mesh.',
          theme_color: '#0b0f17',
          background_color: '#0b0f17',
          display: 'standalone',
          start_url: '/',
          scope: '/',
          icons: [
            { src: '/pwa-192x192.png', sizes: '192x192', type: 'image/png' },
            { src: '/pwa-512x512.png', sizes: '512x512', type: 'image/png' },
            { src: '/maskable-512x512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
          ],
        },
        workbox: {
          // The app shell. ONNX Runtime (27 MB a file) and model files are kept by the app itself in the caches below
          // (src/client/lib/device-cache.ts), and the catalogue in IndexedDB; this worker answers from those caches.
          globPatterns: ['**/*.{js,css,html,svg,png,webmanifest}'],
          globIgnores: ['ort/**'],
          navigateFallback: '/index.html',
          navigateFallbackDenylist: [/^\/api\//, /^\/v1\//, /^\/models\//, /^\/socket\.io\//, /^\/ort\//],
          cleanupOutdatedCaches: true,
          // The first install takes control of the page that registered it, so what that first visit fetches already
          // goes through the worker; a later version still waits (skipWaiting stays off) until the person accepts it.
          clientsClaim: true,
          skipWaiting: false,
          runtimeCaching: [
            {
              // Pinned to a commit, so a URL's bytes never change: cache-first, in the cache the app saves models to.
              urlPattern: ({ url, sameOrigin }) =>
                sameOrigin && /^\/models\/[^/]+\/[^/]+\/resolve\/[0-9a-f]{40}\//.test(url.pathname),
              handler: 'CacheFirst',
              // ignoreVary: the server's CORS layer sends `Vary: Origin`, and a module import carries an Origin header
              // that the stored request lacked, so an exact match missed offline.
              options: {
                cacheName: 'mesh-models',
                cacheableResponse: { statuses: [200] },
                matchOptions: { ignoreVary: true },
              },
            },
            {
              // ONNX Runtime's files, versioned by URL; the app keeps those of the backend in use in this cache itself.
              urlPattern: ({ url, sameOrigin }) => sameOrigin && url.pathname.startsWith('/ort/'),
              handler: 'CacheFirst',
              options: {
                cacheName: 'mesh-runtime',
                cacheableResponse: { statuses: [200] },
                matchOptions: { ignoreVary: true },
              },
            },
          ],
        },
      }),
  ],
  define: {
    __ORT_WASM_BASE__: JSON.stringify(ORT_WASM_BASE),
    // Shown in the app; a new build gets a new stamp, so its service worker is a new version.
    __APP_BUILD__: JSON.stringify(process.env.MESH_BUILD_ID ?? new Date().toISOString().slice(0, 16).replace('T', ' ')),
  },
  // ONNX Runtime's "extern wasm" build loads its glue and .wasm from `wasmPaths` only; the default build would
  // also make Vite emit a second, hashed 27 MB copy of the WASM file into assets/.
  resolve: { conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions] },
  worker: { format: 'es', plugins: () => [ortOutputArrays()] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No source maps in the shipped app (they publish the source and its comments to anyone); MESH_SOURCEMAP=1
    // builds them for debugging a build locally. The server never serves `.map` files in production either.
    sourcemap: process.env.MESH_SOURCEMAP === '1',
    // transformers.js and ONNX Runtime's glue are large by nature; they load in the worker, off the main thread.
    chunkSizeWarningLimit: 2048,
  },
}));
