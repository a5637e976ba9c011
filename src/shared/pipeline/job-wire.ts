// One job's view of a frame channel shared by every job between two peers: it delivers only frames of that job
// (read from the frame header, docs/pipeline.md#frames), and sends, buffers and closes as the channel does.
import type { FrameWire } from './frame-wire.ts';

const JOB_ID_LENGTH_AT = 16;
const JOB_ID_AT = 17;
const encoder = new TextEncoder();

/** True when `frame`'s header names `jobId` (an unreadable header names no job). */
export function frameIsFor(frame: Uint8Array, jobId: Uint8Array): boolean {
  if (frame.byteLength < JOB_ID_AT + jobId.length || frame[JOB_ID_LENGTH_AT] !== jobId.length) return false;
  for (let i = 0; i < jobId.length; i++) if (frame[JOB_ID_AT + i] !== jobId[i]) return false;
  return true;
}

/** `wire` seen by job `jobId`: closing this view does not close the channel the other jobs use. */
export function jobFrameWire(wire: FrameWire, jobId: string): FrameWire {
  const id = encoder.encode(jobId);
  return {
    maxFrameBytes: wire.maxFrameBytes,
    send: (frame) => wire.send(frame),
    isOpen: () => wire.isOpen(),
    bufferedAmount: () => wire.bufferedAmount(),
    onceBelow: (threshold, listener) => wire.onceBelow(threshold, listener),
    onFrame: (listener) =>
      wire.onFrame((frame) => {
        if (frameIsFor(frame, id)) listener(frame);
      }),
    close: () => undefined,
  };
}
