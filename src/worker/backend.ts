// Which backend and dtype a model runs on, and why: WebGPU when an adapter exists (f16 weights only where the
// adapter has shader-f16), else WASM; onnxruntime-node on the CPU in Node. Runs in the worker: no DOM.
import type { Dtype } from '../shared/schemas/models.ts';
import type { Backend, BackendPreference, EngineModel } from '../shared/engine-protocol.ts';
import { WITHOUT_F16 } from '../shared/device-dtype.ts';

/** The slice of WebGPU the planner reads (kept structural so the engine also compiles for Node). */
export interface GpuAdapterLike {
  features: { has(feature: string): boolean };
  info?: { vendor?: string; architecture?: string; description?: string };
}
export interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<GpuAdapterLike | null>;
}

export interface BackendPlan {
  backend: Backend;
  dtype: Dtype;
  reason: string;
}

/** transformers.js' file name suffix per dtype (`onnx/model{suffix}.onnx`). */
const DTYPE_SUFFIX: Record<Dtype, string> = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
};

export function onnxFile(dtype: Dtype, name = 'model'): string {
  return `onnx/${name}${DTYPE_SUFFIX[dtype]}.onnx`;
}

export function isNode(): boolean {
  const process = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof process?.versions?.node === 'string' && !('document' in globalThis) && !('importScripts' in globalThis);
}

export function browserGpu(): GpuLike | null {
  return (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu ?? null;
}

function adapterName(adapter: GpuAdapterLike): string {
  const info = adapter.info;
  return [info?.vendor, info?.architecture || info?.description].filter(Boolean).join(' ') || 'unknown adapter';
}

export async function planBackend(
  model: EngineModel,
  preference: BackendPreference,
  gpu: GpuLike | null,
  node = isNode(),
): Promise<BackendPlan> {
  const wasm = (why: string): BackendPlan => ({ backend: node ? 'cpu' : 'wasm', dtype: model.dtype.wasm, reason: why });
  if (node) return wasm('Node.js: onnxruntime-node on the CPU');
  if (preference === 'wasm') return wasm('WASM was asked for');
  if (!gpu) return wasm('This browser has no WebGPU: WASM on the CPU');
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (error) {
    return wasm(
      `WebGPU adapter request failed (${error instanceof Error ? error.message : String(error)}): WASM on the CPU`,
    );
  }
  if (!adapter) return wasm('No WebGPU adapter available: WASM on the CPU');
  const name = adapterName(adapter);
  const wanted = model.dtype.webgpu;
  if (adapter.features.has('shader-f16') || !WITHOUT_F16[wanted]) {
    return { backend: 'webgpu', dtype: wanted, reason: `WebGPU on ${name}` };
  }
  const instead = WITHOUT_F16[wanted] as Dtype;
  if (model.files.includes(onnxFile(instead))) {
    return {
      backend: 'webgpu',
      dtype: instead,
      reason: `WebGPU on ${name} without shader-f16: ${instead} instead of ${wanted}`,
    };
  }
  return wasm(`WebGPU on ${name} lacks shader-f16 and this model has no ${instead} weights: WASM on the CPU`);
}
