// The binary side of a data channel, as pipeline stages use it: frames out with backpressure (wait while more
// than a high-water mark is buffered, as PeerChannel does for JSON), frames in through a subscription. A WebRTC
// data channel (channel-wire.ts) or the in-memory pair below (tests, benchmarks, stages in one process) gives one.
import { FRAME_LIMITS } from './frame.ts';

export interface FrameWire {
  /** The largest frame the other side accepts (a data channel's max-message-size); senders split to fit. */
  readonly maxFrameBytes: number;
  send(frame: Uint8Array): void;
  isOpen(): boolean;
  bufferedAmount(): number;
  /** Calls `listener` once when the buffered amount falls to `threshold` (or the wire closes). */
  onceBelow(threshold: number, listener: () => void): void;
  /** Adds `listener` for arriving frames; returns the unsubscribe. */
  onFrame(listener: (frame: Uint8Array) => void): () => void;
  close(): void;
}

/** Buffered bytes above which a sender waits (a data channel's buffer is the sender's memory). */
export const FRAME_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Sends `frame`, first waiting for the wire to drain below half the high-water mark if it is above it. `signal`
 * gives the frame up (false, nothing sent): the receiver is being replaced, and one that stopped reading would
 * keep the wait, and every frame after it, forever.
 */
export async function sendFrame(
  wire: FrameWire,
  frame: Uint8Array,
  highWater = FRAME_HIGH_WATER_BYTES,
  signal?: AbortSignal,
): Promise<boolean> {
  if (wire.bufferedAmount() > highWater && !signal?.aborted) {
    await new Promise<void>((resolve) => {
      wire.onceBelow(highWater / 2, resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }
  if (signal?.aborted) return false;
  if (!wire.isOpen()) throw new Error('the wire closed');
  wire.send(frame);
  return true;
}

export interface MemoryWireOptions {
  /** Frames larger than this are refused, as a data channel refuses messages past its max-message-size. */
  maxFrameBytes?: number;
  /** Delay of each frame, one way (a network's half round trip); 0 still delivers on a later task. */
  latencyMs?: number;
}

/** Counts what crossed a wire, for the benchmark's bytes per token per hop. */
export interface WireStats {
  frames: number;
  bytes: number;
}

/**
 * Two connected ends that behave like a data channel: a frame is copied, counted as buffered until delivered on a
 * later task, and delivered in order.
 */
export function memoryWirePair(
  options: MemoryWireOptions = {},
): [FrameWire & { stats: WireStats }, FrameWire & { stats: WireStats }] {
  const latency = options.latencyMs ?? 0;
  let open = true;
  const closers: (() => void)[] = [];
  const make = () => {
    const listeners = new Set<(frame: Uint8Array) => void>();
    const waiting: { threshold: number; listener: () => void }[] = [];
    let buffered = 0;
    const stats: WireStats = { frames: 0, bytes: 0 };
    const end = {
      maxFrameBytes: options.maxFrameBytes ?? FRAME_LIMITS.bytes,
      stats,
      listeners,
      peer: null as null | { listeners: Set<(frame: Uint8Array) => void> },
      send(frame: Uint8Array) {
        if (!open) throw new Error('the wire is closed');
        if (frame.byteLength > end.maxFrameBytes)
          throw new Error(`a frame of ${frame.byteLength} bytes is over this wire's ${end.maxFrameBytes}`);
        const copy = frame.slice();
        buffered += copy.byteLength;
        stats.frames++;
        stats.bytes += copy.byteLength;
        setTimeout(() => {
          buffered -= copy.byteLength;
          for (let i = waiting.length - 1; i >= 0; i--) {
            const entry = waiting[i];
            if (entry && buffered <= entry.threshold) {
              waiting.splice(i, 1);
              entry.listener();
            }
          }
          if (!open) return;
          for (const listener of end.peer?.listeners ?? []) listener(copy);
        }, latency);
      },
      isOpen: () => open,
      bufferedAmount: () => buffered,
      onceBelow(threshold: number, listener: () => void) {
        if (buffered <= threshold || !open) listener();
        else waiting.push({ threshold, listener });
      },
      onFrame(listener: (frame: Uint8Array) => void) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      close() {
        open = false;
        for (const closer of closers) closer();
      },
    };
    // Closing either end closes both, and whoever waits to send is told.
    closers.push(() => {
      for (const entry of waiting.splice(0)) entry.listener();
    });
    return end;
  };
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
