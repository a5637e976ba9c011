// A StageSession over onnxruntime-web, for stages hosted in a browser (docs/pipeline.md, "Browser stages"). It
// imports the build transformers.js imports (`onnxruntime-web/webgpu`), so in the inference worker both share one
// ONNX Runtime and its WASM files, served by the app from `/ort/<version>/` (never a CDN). WebGPU when an adapter
// exists and the graph loads there, else WASM, saying why. Runs in the worker: no DOM.
import * as ort from 'onnxruntime-web/webgpu';
import type { StageSession, StageTensor, StageValueInfo } from '../shared/pipeline/stage-session.ts';
import { browserGpu } from './backend.ts';

export interface WebStageOptions {
  backend: 'auto' | 'webgpu' | 'wasm';
  /** Where the app serves ONNX Runtime's .wasm/.mjs files. */
  wasmPaths?: string;
  /** The graph's external data file, by the name the graph gives it. */
  externalData?: { path: string; data: Uint8Array };
}

export interface WebStage extends StageSession {
  backend: 'webgpu' | 'wasm';
  reason: string;
}

function valueInfo(meta: ort.InferenceSession.ValueMetadata): StageValueInfo {
  return {
    name: meta.name,
    shape: meta.isTensor ? meta.shape.map((d) => (typeof d === 'number' ? d : String(d))) : [],
  };
}

function fromOrt(name: string, tensor: ort.Tensor): StageTensor {
  // Copied out of ONNX Runtime's memory: the result outlives the next run and may be posted to another thread.
  if (tensor.type === 'float32')
    return { type: 'float32', data: Float32Array.from(tensor.data as Float32Array), dims: [...tensor.dims] };
  if (tensor.type === 'int64')
    return { type: 'int64', data: BigInt64Array.from(tensor.data as BigInt64Array), dims: [...tensor.dims] };
  throw new Error(`output ${name} is ${tensor.type}: stages exchange float32 and int64 tensors only`);
}

async function webgpuAdapter(): Promise<string | null> {
  const gpu = browserGpu();
  if (!gpu) return null;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  return adapter ? 'WebGPU' : null;
}

/** Opens the stage graph `model` (its bytes) on WebGPU or WASM. */
export async function openWebStage(model: Uint8Array, options: WebStageOptions): Promise<WebStage> {
  if (options.wasmPaths && ort.env.wasm) ort.env.wasm.wasmPaths = options.wasmPaths;
  // One thread unless the page is cross-origin isolated (ONNX Runtime falls back itself; saying so keeps it quiet).
  if (ort.env.wasm && !(globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated)
    ort.env.wasm.numThreads = 1;
  const create = (ep: 'webgpu' | 'wasm') =>
    ort.InferenceSession.create(model, {
      executionProviders: [ep],
      ...(options.externalData ? { externalData: [options.externalData] } : {}),
    });
  let backend: 'webgpu' | 'wasm' = 'wasm';
  let reason = 'WASM was asked for';
  let session: ort.InferenceSession | null = null;
  if (options.backend !== 'wasm') {
    const gpu = await webgpuAdapter();
    if (!gpu) reason = 'No WebGPU adapter available: WASM on the CPU';
    else {
      try {
        session = await create('webgpu');
        backend = 'webgpu';
        reason = 'WebGPU';
      } catch (error) {
        if (options.backend === 'webgpu') throw error;
        reason = `WebGPU failed to load the stage (${error instanceof Error ? error.message : String(error)}): WASM`;
      }
    }
  }
  session ??= await create('wasm');
  const loaded = session;
  return {
    backend,
    reason,
    inputs: loaded.inputMetadata.map(valueInfo),
    outputs: loaded.outputMetadata.map(valueInfo),
    async run(feeds) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.type, t.data, [...t.dims]);
      const results = await loaded.run(ortFeeds);
      const out: Record<string, StageTensor> = {};
      for (const [name, tensor] of Object.entries(results)) {
        out[name] = fromOrt(name, tensor);
        tensor.dispose();
      }
      return out;
    },
    release: () => loaded.release(),
  };
}
