// Headless Debian Chromium through playwright-core, and a production build of the client for it to load.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { build } from 'vite';
import { ROOT } from './server-process.ts';

const BASE_FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * `webgpu`: SwiftShader's WebGPU adapter (no GPU here, but a real WebGPU implementation);
 * `no-gpu`: `--disable-gpu`, so `navigator.gpu` offers no adapter and the engine must fall back to WASM.
 */
export function launchChromium(mode: 'webgpu' | 'no-gpu'): Promise<Browser> {
  const flags = mode === 'webgpu' ? ['--enable-unsafe-webgpu'] : ['--disable-gpu'];
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: [...BASE_FLAGS, ...flags] });
}

/** `vite build` of the app into `outDir`; returns the URL path of the bundled inference worker. */
export async function buildClient(outDir: string): Promise<{ workerPath: string }> {
  await build({ root: ROOT, logLevel: 'warn', build: { outDir, emptyOutDir: true, sourcemap: false } });
  const worker = (await readdir(path.join(outDir, 'assets'))).find((file) => /^inference\.worker-.*\.js$/.test(file));
  if (!worker) throw new Error('the build has no inference worker bundle');
  return { workerPath: `/assets/${worker}` };
}
