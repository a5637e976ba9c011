import { describe, expect, it } from 'vitest';
import { OUTPUT_HOOK, OutputArrays, type SessionLike } from './output-arrays.ts';

type Hook = (sessionId: number, type: typeof Float32Array, length: number) => Float32Array | undefined;

/** ONNX Runtime Web's side, as the rewritten line behaves: the hook's array, or a new one of its own. */
function fakeSession(scope: Record<string, unknown>, sessionId: number, sizes: (step: number) => number[]) {
  let step = 0;
  const session: SessionLike = {
    handler: { sessionId },
    async run(feeds: unknown) {
      void feeds;
      await Promise.resolve();
      const hook = scope[OUTPUT_HOOK] as Hook | undefined;
      const outputs: Record<string, { cpuData: Float32Array }> = {};
      sizes(step++).forEach((length, i) => {
        const data = hook?.(sessionId, Float32Array, length) ?? new Float32Array(length);
        data.fill(step);
        outputs[`present.${i}`] = { cpuData: data };
      });
      return outputs;
    },
  };
  return session;
}

describe('OutputArrays', () => {
  it('lends reused buffers to its session, never one the last run read or made, and lets outgrown ones go', async () => {
    const scope: Record<string, unknown> = {};
    const pool = new OutputArrays(scope);
    pool.install();
    // Two KV tensors growing by 256 floats (1 KiB, a position) a step, from 64 KiB: a decoder's cache.
    const session = fakeSession(scope, 7, (step) => [16_384 + 256 * step, 16_384 + 256 * step]);
    expect(pool.wrap(session)).toBe(true);
    const seen = new Set<ArrayBuffer>();
    let feeds: Record<string, { cpuData: Float32Array }> = {};
    for (let step = 0; step < 60; step++) {
      const inputs = Object.values(feeds).map((t) => t.cpuData.buffer);
      const outputs = (await session.run(feeds)) as typeof feeds;
      for (const { cpuData } of Object.values(outputs)) {
        // The data is this step's own, and sits on a buffer that is neither an input of this run nor the other output.
        expect(cpuData.every((v) => v === step + 1)).toBe(true);
        expect(inputs).not.toContain(cpuData.buffer);
        seen.add(cpuData.buffer as ArrayBuffer);
      }
      const [a, b] = Object.values(outputs);
      expect(a?.cpuData.buffer).not.toBe(b?.cpuData.buffer);
      feeds = outputs;
    }
    // 120 arrays on far fewer buffers: reused while the headroom lasts, new ones as the tensors outgrow them.
    expect(seen.size).toBeLessThan(40);
    // What is kept for the next run is about what a run takes, not everything ever made.
    expect(pool.freeBytes).toBeLessThanOrEqual(2 * 4 * (16_384 + 256 * 60) * 1.2);
  });

  it("leaves other sessions', small and out-of-run outputs to ONNX Runtime, and forgets all on clear", async () => {
    const scope: Record<string, unknown> = {};
    const pool = new OutputArrays(scope);
    pool.install();
    const hook = scope[OUTPUT_HOOK] as Hook;
    const mine = fakeSession(scope, 1, () => [20_000]);
    pool.wrap(mine);
    // Outside a run of the wrapped session: ONNX Runtime's own array.
    expect(hook(1, Float32Array, 20_000)).toBeUndefined();
    // Another session (a pipeline stage) running while the engine's run is under way: its own arrays too.
    const other = fakeSession(scope, 2, () => [20_000]);
    const running = mine.run({});
    expect(hook(2, Float32Array, 20_000)).toBeUndefined();
    await running;
    // Below 64 KiB (a decode step's logits on a small vocabulary): not worth a buffer.
    const small = fakeSession(scope, 3, () => [100]);
    pool.wrap(small);
    const out = (await small.run({})) as Record<string, { cpuData: Float32Array }>;
    expect(out['present.0']?.cpuData.buffer.byteLength).toBe(400);
    // A session without an id to tell it by is not wrapped.
    expect(pool.wrap({ run: other.run })).toBe(false);
    await mine.run({});
    expect(pool.freeBytes).toBeGreaterThan(0);
    pool.clear();
    expect(pool.freeBytes).toBe(0);
  });
});
