// A FrameWire over a WebRTC data channel, the browser's RTCDataChannel or werift's in Node: binary messages, the
// channel's own buffered amount for backpressure (docs/pipeline.md). The channel carries frames only; the job's
// control messages travel on the peer protocol's JSON channel.
import { onceBufferedBelow } from '../wire.ts';
import type { FrameWire, WireStats } from './frame-wire.ts';

export interface BinaryChannelLike {
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  /** Browsers deliver Blobs unless told `arraybuffer`; werift always gives Buffers (Uint8Arrays). */
  binaryType?: string;
  onmessage: ((event: { data: unknown }) => void) | null | undefined;
  addEventListener(type: 'bufferedamountlow' | 'close', listener: () => void): void;
  removeEventListener(type: 'bufferedamountlow' | 'close', listener: () => void): void;
  send(data: Uint8Array): void;
  close(): void;
}

/**
 * Messages up to 64 KiB cross every WebRTC stack this project meets (werift's default max-message-size; browsers
 * take more): larger hidden states are split into frames of this size by their sender.
 */
export const CHANNEL_FRAME_BYTES = 64 * 1024;

export function channelFrameWire(
  channel: BinaryChannelLike,
  maxFrameBytes = CHANNEL_FRAME_BYTES,
): FrameWire & { stats: WireStats } {
  const listeners = new Set<(frame: Uint8Array) => void>();
  const stats: WireStats = { frames: 0, bytes: 0 };
  if ('binaryType' in channel) channel.binaryType = 'arraybuffer';
  channel.onmessage = (event) => {
    const data = event.data;
    // Text on the frame channel is not part of the protocol: ignored, like any frame that does not decode.
    const frame = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null;
    if (!frame) return;
    for (const listener of listeners) listener(frame);
  };
  return {
    maxFrameBytes,
    stats,
    send(frame) {
      channel.send(frame);
      stats.frames++;
      stats.bytes += frame.byteLength;
    },
    isOpen: () => channel.readyState === 'open',
    bufferedAmount: () => channel.bufferedAmount,
    onceBelow: (threshold, listener) => onceBufferedBelow(channel, threshold, listener),
    onFrame(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => channel.close(),
  };
}

/** The frame channel's SCTP stream id, beside the peer protocol's channel (id 0) on the same connection. */
export const FRAME_CHANNEL_ID = 1;

/**
 * Opens the frame channel on an established peer connection (PeerLink's `pc`): negotiated on both sides with the
 * same id, so it needs no renegotiation and either side may open it first.
 */
export function openFrameChannel(
  pc: { createDataChannel(label: string, options: { negotiated: true; id: number }): unknown },
  timeoutMs = 10_000,
): Promise<FrameWire & { stats: WireStats }> {
  const channel = pc.createDataChannel('pipeline-frames', {
    negotiated: true,
    id: FRAME_CHANNEL_ID,
  }) as BinaryChannelLike & { onopen: (() => void) | null | undefined };
  const wire = channelFrameWire(channel);
  if (channel.readyState === 'open') return Promise.resolve(wire);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the frame channel did not open')), timeoutMs);
    channel.onopen = () => {
      clearTimeout(timer);
      resolve(wire);
    };
  });
}
