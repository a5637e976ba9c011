// Reused memory for ONNX Runtime Web's output tensors during the engine's runs (browser).
//
// Each run of a decoder returns the whole KV cache again (`present.*`: 2 KiB a position for each of 16 tensors on
// the benchmark model), and ONNX Runtime Web copies every output out of its WebAssembly memory into a new typed array.
// A new array is fresh memory: its pages are faulted in as the copy first touches them, about 1,150 faults a token at
// 150 positions, and a fault costs what the machine makes it cost (14 µs on the microVM of bench/README.md, issue 19,
// where that was 16 of the 25 ms a token took). Arrays handed out from here reuse buffers whose pages are already in;
// the engine went from about 40 to 84 tok/s there.
//
// The worker's build rewrites one line of ONNX Runtime Web (scripts/ort-output-arrays.ts) to ask `globalThis`'s
// OUTPUT_HOOK for an output array before it makes one. The hook answers only for a session inside a wrapped run, so
// a pipeline stage's session in the same worker keeps ONNX Runtime's own arrays.
//
// When a buffer is free again: transformers.js feeds a run's `present.*` outputs to the next run as `past_key_values`
// and holds nothing older; the engine keeps the last run's cache between turns and feeds it to the next one. So a
// buffer lent out before the latest run, and neither that run's output nor its input, is no longer read by anyone.
// (ONNX Runtime copies a run's inputs into its memory before it makes the outputs.)

type OutputArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Int8Array;
type OutputArrayConstructor = {
  new (length: number): OutputArray;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): OutputArray;
  readonly BYTES_PER_ELEMENT: number;
};

/** The name ONNX Runtime Web's rewritten line calls (scripts/ort-output-arrays.ts). */
export const OUTPUT_HOOK = '__meshOrtOutputArray';

/** Smaller outputs (a decode step's logits on a small vocabulary) cost little to make: ONNX Runtime makes them. */
const MIN_POOLED_BYTES = 64 * 1024;
/** A buffer is made this much larger than asked, so a KV tensor growing by a position a step reuses it many times. */
const HEADROOM = 1 / 8;

export interface SessionLike {
  run(...args: unknown[]): Promise<Record<string, unknown>>;
  handler?: { sessionId?: unknown };
}

/** One session's buffers. */
interface Lending {
  /** Buffers no one reads, smallest first. */
  free: ArrayBuffer[];
  /** Buffers lent out and maybe still read: the last run's inputs and outputs. */
  lent: Set<ArrayBuffer>;
  /** Bytes handed out during the run under way. */
  lentThisRun: number;
}

export class OutputArrays {
  /** By session id: a model of several sessions feeds each its own outputs. */
  private readonly sessions = new Map<number, Lending>();
  private active: number | null = null;

  constructor(private readonly scope: Record<string, unknown> = globalThis as unknown as Record<string, unknown>) {}

  /** Answers the rewritten line in ONNX Runtime Web: an array for `sessionId`'s output, or undefined (its own). */
  install(): void {
    this.scope[OUTPUT_HOOK] = (sessionId: number, type: OutputArrayConstructor, length: number) =>
      this.allocate(sessionId, type, length);
  }

  /** Wraps `session.run` so its outputs are drawn from here; false when the session has no id to tell it apart. */
  wrap(session: SessionLike): boolean {
    const id = session.handler?.sessionId;
    if (typeof id !== 'number') return false;
    const run = session.run.bind(session);
    session.run = async (...args: unknown[]) => {
      // One run at a time draws from here (transformers.js runs a model's sessions one after another).
      if (this.active !== null) return run(...args);
      this.active = id;
      let outputs: Record<string, unknown>;
      try {
        outputs = await run(...args);
      } finally {
        this.active = null;
      }
      this.settle(id, [args[0], outputs]);
      return outputs;
    };
    return true;
  }

  /** Forgets every buffer (a model unloaded): they go with the garbage collector once their arrays do. */
  clear(): void {
    this.sessions.clear();
  }

  /** Bytes held for reuse now (tests, bench). */
  get freeBytes(): number {
    let sum = 0;
    for (const { free } of this.sessions.values()) for (const buffer of free) sum += buffer.byteLength;
    return sum;
  }

  private lending(sessionId: number): Lending {
    let lending = this.sessions.get(sessionId);
    if (!lending) {
      lending = { free: [], lent: new Set(), lentThisRun: 0 };
      this.sessions.set(sessionId, lending);
    }
    return lending;
  }

  private allocate(sessionId: number, type: OutputArrayConstructor, length: number): OutputArray | undefined {
    const bytes = length * type.BYTES_PER_ELEMENT;
    if (sessionId !== this.active || bytes < MIN_POOLED_BYTES) return undefined;
    const lending = this.lending(sessionId);
    // Best fit: the smallest free buffer that holds it, so large buffers stay for large outputs.
    const at = lending.free.findIndex((buffer) => buffer.byteLength >= bytes);
    const buffer =
      at >= 0 ? lending.free.splice(at, 1)[0]! : new ArrayBuffer(Math.ceil((bytes * (1 + HEADROOM)) / 4096) * 4096);
    lending.lent.add(buffer);
    lending.lentThisRun += buffer.byteLength;
    return new type(buffer, 0, length);
  }

  /**
   * After a run of `sessionId`: every buffer it lent that is neither among this run's inputs nor its outputs is read
   * by no one now (see the header). The free list keeps about what the next run will ask for (what this one was
   * lent), the smallest let go first, so a long conversation's outgrown buffers do not stay.
   */
  private settle(sessionId: number, tensorMaps: unknown[]): void {
    const lending = this.sessions.get(sessionId);
    if (!lending) return;
    const live = new Set<ArrayBuffer>();
    for (const map of tensorMaps) {
      if (!map || typeof map !== 'object') continue;
      for (const value of Object.values(map as Record<string, unknown>)) {
        // ONNX Runtime Web's Tensor keeps a CPU tensor's array in `cpuData` (`data` throws for a GPU one).
        const data = (value as { cpuData?: unknown } | null)?.cpuData;
        const buffer = ArrayBuffer.isView(data) ? data.buffer : null;
        if (buffer instanceof ArrayBuffer && lending.lent.has(buffer)) live.add(buffer);
      }
    }
    for (const buffer of lending.lent) if (!live.has(buffer)) lending.free.push(buffer);
    lending.lent = live;
    lending.free.sort((a, b) => a.byteLength - b.byteLength);
    let freeBytes = lending.free.reduce((sum, buffer) => sum + buffer.byteLength, 0);
    while (freeBytes > lending.lentThisRun && lending.free.length) freeBytes -= lending.free.shift()!.byteLength;
    lending.lentThisRun = 0;
  }
}
