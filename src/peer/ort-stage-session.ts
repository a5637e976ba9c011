// A StageSession over onnxruntime-node (the build transformers.js uses in Node), for stages hosted by the headless
// peer, the tests and the benchmark.
import * as ort from 'onnxruntime-node';
import type { StageSession, StageTensor, StageValueInfo } from '../shared/pipeline/stage-session.ts';

function valueInfo(meta: ort.InferenceSession.ValueMetadata): StageValueInfo {
  return {
    name: meta.name,
    shape: meta.isTensor ? meta.shape.map((d) => (typeof d === 'number' ? d : String(d))) : [],
  };
}

function fromOrt(name: string, tensor: ort.Tensor): StageTensor {
  if (tensor.type === 'float32') return { type: 'float32', data: tensor.data as Float32Array, dims: tensor.dims };
  if (tensor.type === 'int64') return { type: 'int64', data: tensor.data as BigInt64Array, dims: tensor.dims };
  throw new Error(`output ${name} is ${tensor.type}: stages exchange float32 and int64 tensors only`);
}

export interface OrtStageOptions {
  /** ONNX Runtime threads per operator; several stages on one machine want fewer than every core. */
  threads?: number;
}

/** Opens `file` (its external data file beside it) as a stage session. */
export async function openOrtStage(file: string, options: OrtStageOptions = {}): Promise<StageSession> {
  const session = await ort.InferenceSession.create(file, {
    ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
  });
  return {
    inputs: session.inputMetadata.map(valueInfo),
    outputs: session.outputMetadata.map(valueInfo),
    async run(feeds) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.type, t.data, [...t.dims]);
      const results = await session.run(ortFeeds);
      const out: Record<string, StageTensor> = {};
      for (const [name, tensor] of Object.entries(results)) out[name] = fromOrt(name, tensor as ort.Tensor);
      return out;
    },
    release: () => session.release(),
  };
}
