// The early start of ONNX Runtime Web (src/worker/runtime-start.ts): its embedded one-node model is a valid ONNX
// graph that runs, and starting the runtime initialises onnxruntime-web's WASM backend (here in Node, where
// onnxruntime-web runs too) so that the model's own session finds it ready.
import onnxProto from 'onnx-proto';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web/webgpu';
import { describe, expect, it } from 'vitest';
import { IDENTITY_MODEL_BASE64, startOnnxRuntime } from '../src/worker/runtime-start.ts';

// Node has no `self.crossOriginIsolated`; onnxruntime-web would then ask the OS for its core count through a
// `require` its ES module build lacks. One thread, as a page without cross-origin isolation gets.
ortWeb.env.wasm.numThreads = 1;

const bytes = () => Uint8Array.from(Buffer.from(IDENTITY_MODEL_BASE64, 'base64'));

describe('starting ONNX Runtime Web early', () => {
  it('embeds a one-node Identity graph that onnxruntime-node runs', async () => {
    const model = onnxProto.onnx.ModelProto.decode(bytes());
    expect(model.graph?.node?.map((n) => n.opType)).toEqual(['Identity']);
    const session = await ortNode.InferenceSession.create(bytes());
    const { y } = await session.run({ x: new ortNode.Tensor('float32', Float32Array.of(7), [1]) });
    expect(Array.from(y?.data as Float32Array)).toEqual([7]);
    await session.release();
  });

  it('initialises the WASM backend once, and a session created after it runs', async () => {
    const first = startOnnxRuntime();
    expect(startOnnxRuntime()).toBe(first);
    await expect(first).resolves.toBeUndefined();
    const session = await ortWeb.InferenceSession.create(bytes(), { executionProviders: ['wasm'] });
    const { y } = await session.run({ x: new ortWeb.Tensor('float32', Float32Array.of(3), [1]) });
    expect(Array.from(y?.data as Float32Array)).toEqual([3]);
    await session.release();
  }, 60_000);
});
