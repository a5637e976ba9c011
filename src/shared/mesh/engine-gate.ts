// One engine, two kinds of work: this device's own chat and jobs served for the mesh. The gate runs one at a
// time, local work first: a local request waits for nobody but other local work, and a mesh job running when it
// comes is stopped (its requester continues it on another peer from the tokens it already has).
import type { Backend, EngineMessage, SamplingInput } from '../engine-protocol.ts';
import type { ModelRef } from '../peer-protocol.ts';

export interface GeneratedToken {
  index: number;
  tokenId: number;
  text: string;
}

export interface GenerationSummary {
  reason: 'eos' | 'length' | 'interrupted';
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  tokensPerSecond: number;
}

/** A generation in progress (the engine client's `Generation` has this shape). */
export interface RunningGeneration extends AsyncIterable<GeneratedToken> {
  readonly result: Promise<GenerationSummary>;
  stop(): void;
}

/** The engine as the mesh sees it: what is loaded, and a way to generate (optionally after a prefix). */
export interface MeshEngine {
  loaded(): { model: ModelRef; backend: Backend } | null;
  generate(messages: EngineMessage[], sampling: SamplingInput, prefix: number[]): RunningGeneration;
}

export type Lane = 'local' | 'mesh';

interface Holder {
  lane: Lane;
  /** Called when local work needs the engine back (mesh holders only). */
  preempt: () => void;
}

export class EngineGate {
  private holder: Holder | null = null;
  private readonly waiting: (Holder & { grant: () => void })[] = [];

  /**
   * Waits for the engine; resolves with a release function. `preempt` is called if local work arrives while this
   * mesh work holds the engine: stop the generation, and release as usual.
   */
  async acquire(lane: Lane, preempt: () => void = () => {}): Promise<() => void> {
    const holder: Holder = { lane, preempt };
    if (this.holder) {
      if (lane === 'local' && this.holder.lane === 'mesh') this.holder.preempt();
      await new Promise<void>((grant) => {
        const entry = { ...holder, grant };
        // Local work goes ahead of every waiting mesh job, behind earlier local work.
        const at = lane === 'local' ? this.waiting.findIndex((w) => w.lane === 'mesh') : -1;
        if (at === -1) this.waiting.push(entry);
        else this.waiting.splice(at, 0, entry);
      });
    }
    // Granted: `release` below (or this line, when the engine was free) made this the holder.
    this.holder ??= holder;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The next holder is set before its promise resumes, so nobody slips in between.
      this.holder = next ? { lane: next.lane, preempt: next.preempt } : null;
      next?.grant();
    };
  }

  /** Mesh jobs waiting for the engine (what `hello` advertises as the queue). */
  queued(lane: Lane = 'mesh'): number {
    return this.waiting.filter((w) => w.lane === lane).length;
  }

  busy(): boolean {
    return this.holder !== null;
  }
}
