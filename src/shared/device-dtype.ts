// Which dtype of a catalogue entry a device runs, decided before anything is fetched so the server downloads only
// that dtype: the engine's backend plan (src/worker/backend.ts) makes the same choice when it loads the model.
import type { Dtype } from './schemas/models.ts';

/** The f16-free variant a WebGPU adapter without shader-f16 runs instead. */
export const WITHOUT_F16: Partial<Record<Dtype, Dtype>> = { q4f16: 'q4', fp16: 'fp32' };

/** What the device offers: a WebGPU adapter (with or without f16 shaders), or none (WASM). */
export interface DeviceGpu {
  webgpu: boolean;
  f16: boolean;
}

/**
 * The dtype `device` runs of an entry whose backends run `dtype`: WebGPU's (or its f16-free variant when the adapter
 * lacks shader-f16 and the repo has it, as `has` says), else WASM's.
 */
export function deviceDtype(
  dtype: { webgpu: Dtype; wasm: Dtype },
  device: DeviceGpu,
  has: (dtype: Dtype) => boolean,
): Dtype {
  if (!device.webgpu) return dtype.wasm;
  const instead = WITHOUT_F16[dtype.webgpu];
  if (device.f16 || !instead) return dtype.webgpu;
  return has(instead) || instead === dtype.wasm ? instead : dtype.wasm;
}
