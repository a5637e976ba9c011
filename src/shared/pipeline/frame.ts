// The binary frame that carries a pipeline job's data between stages (docs/pipeline.md#frames): token ids into the
// first stage, hidden states from stage to stage, the sampled token back to the requester. A fixed little-endian
// header, the job id, then the payload, 4-byte aligned so the receiver views it without a copy.
//
//   0  u8  version (1)          4  u32 position of the first row      16  u8 job id length (1..64)
//   1  u8  kind                 8  u32 rows (sequence length)         17  job id (UTF-8), zero-padded to 4 bytes
//   2  u8  dtype               12  u32 row width (hidden size; 1)     ..  payload: rows x width values
//   3  u8  flags (bit 0: sample after this frame; bit 1: rebuild a replacement's cache, do not pass on)

export const FRAME_VERSION = 1;
const HEADER_BYTES = 17;

export const FRAME_KINDS = { tokens: 1, hidden: 2, sampled: 3 } as const;
export type FrameKind = keyof typeof FRAME_KINDS;
export const FRAME_DTYPES = { float32: 1, int32: 2 } as const;
export type FrameDtype = keyof typeof FRAME_DTYPES;
/** Each kind's payload type: ids are int32, hidden states float32 (float16 would be a new dtype). */
const KIND_DTYPE: Record<FrameKind, FrameDtype> = { tokens: 'int32', hidden: 'float32', sampled: 'int32' };
const FLAG_SAMPLE = 1;
const FLAG_REBUILD = 2;

/** Limits a receiver enforces before it allocates anything (docs/SECURITY.md spirit: every size is capped). */
export const FRAME_LIMITS = {
  jobIdBytes: 64,
  rows: 4096,
  width: 65_536,
  bytes: 16 * 1024 * 1024,
} as const;

export type Frame =
  | {
      kind: 'tokens' | 'sampled';
      jobId: string;
      position: number;
      sample: boolean;
      rebuild?: boolean;
      width: 1;
      data: Int32Array;
    }
  | {
      kind: 'hidden';
      jobId: string;
      position: number;
      sample: boolean;
      rebuild?: boolean;
      width: number;
      data: Float32Array;
    };

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1)
  throw new FrameError('pipeline frames are little-endian and this platform is not');

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const align4 = (n: number) => (n + 3) & ~3;

/** Where a frame's payload starts: the header and the job id, padded. */
export function payloadOffset(jobId: string): number {
  return align4(HEADER_BYTES + encoder.encode(jobId).length);
}

/** The most rows of `width` values a frame for `jobId` may carry within `maxBytes` (and the row limit). */
export function rowsPerFrame(jobId: string, width: number, maxBytes: number): number {
  const rows = Math.min(
    FRAME_LIMITS.rows,
    Math.floor((Math.min(maxBytes, FRAME_LIMITS.bytes) - payloadOffset(jobId)) / (width * 4)),
  );
  if (rows < 1) throw new FrameError(`a row of ${width} values does not fit in a frame of ${maxBytes} bytes`);
  return rows;
}

/** Rows in a frame: the payload's length over its width. */
export function frameRows(frame: Frame): number {
  return frame.data.length / frame.width;
}

export function encodeFrame(frame: Frame): Uint8Array {
  const id = encoder.encode(frame.jobId);
  if (id.length < 1 || id.length > FRAME_LIMITS.jobIdBytes)
    throw new FrameError(`a job id is 1 to ${FRAME_LIMITS.jobIdBytes} bytes (this one: ${id.length})`);
  const rows = frameRows(frame);
  if (!Number.isInteger(rows) || rows < 1 || rows > FRAME_LIMITS.rows)
    throw new FrameError(
      `a frame holds 1 to ${FRAME_LIMITS.rows} whole rows of ${frame.width} (got ${frame.data.length} values)`,
    );
  if (frame.width < 1 || frame.width > FRAME_LIMITS.width)
    throw new FrameError(`a row is 1 to ${FRAME_LIMITS.width} wide`);
  if (!Number.isInteger(frame.position) || frame.position < 0 || frame.position > 0xffff_ffff)
    throw new FrameError(`position ${frame.position} is not a u32`);
  const offset = align4(HEADER_BYTES + id.length);
  const bytes = new Uint8Array(offset + frame.data.byteLength);
  if (bytes.length > FRAME_LIMITS.bytes) throw new FrameError(`a frame is at most ${FRAME_LIMITS.bytes} bytes`);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, FRAME_VERSION);
  view.setUint8(1, FRAME_KINDS[frame.kind]);
  view.setUint8(2, FRAME_DTYPES[KIND_DTYPE[frame.kind]]);
  view.setUint8(3, (frame.sample ? FLAG_SAMPLE : 0) | (frame.rebuild ? FLAG_REBUILD : 0));
  view.setUint32(4, frame.position, true);
  view.setUint32(8, rows, true);
  view.setUint32(12, frame.width, true);
  view.setUint8(16, id.length);
  bytes.set(id, HEADER_BYTES);
  bytes.set(new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), offset);
  return bytes;
}

/** Reads a frame, checking every field against the limits; the payload is a view when aligned, else a copy. */
export function decodeFrame(input: Uint8Array): Frame {
  if (input.byteLength > FRAME_LIMITS.bytes) throw new FrameError(`a frame of ${input.byteLength} bytes is too large`);
  if (input.byteLength < HEADER_BYTES) throw new FrameError('a frame is shorter than its header');
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  if (view.getUint8(0) !== FRAME_VERSION)
    throw new FrameError(`frame version ${view.getUint8(0)} is not ${FRAME_VERSION}`);
  const kind = (Object.keys(FRAME_KINDS) as FrameKind[]).find((k) => FRAME_KINDS[k] === view.getUint8(1));
  if (!kind) throw new FrameError(`unknown frame kind ${view.getUint8(1)}`);
  if (view.getUint8(2) !== FRAME_DTYPES[KIND_DTYPE[kind]])
    throw new FrameError(`a ${kind} frame carries ${KIND_DTYPE[kind]}, not dtype ${view.getUint8(2)}`);
  const flags = view.getUint8(3);
  if (flags & ~(FLAG_SAMPLE | FLAG_REBUILD)) throw new FrameError(`unknown frame flags ${flags}`);
  const position = view.getUint32(4, true);
  const rows = view.getUint32(8, true);
  const width = view.getUint32(12, true);
  const idLength = view.getUint8(16);
  if (rows < 1 || rows > FRAME_LIMITS.rows) throw new FrameError(`a frame holds 1 to ${FRAME_LIMITS.rows} rows`);
  if (width < 1 || width > FRAME_LIMITS.width || (kind !== 'hidden' && width !== 1))
    throw new FrameError(`a ${kind} frame cannot have rows ${width} wide`);
  if (idLength < 1 || idLength > FRAME_LIMITS.jobIdBytes) throw new FrameError('bad job id length');
  const offset = align4(HEADER_BYTES + idLength);
  if (input.byteLength !== offset + rows * width * 4)
    throw new FrameError(
      `a frame of ${rows} x ${width} values must be ${offset + rows * width * 4} bytes, not ${input.byteLength}`,
    );
  let jobId: string;
  try {
    jobId = decoder.decode(input.subarray(HEADER_BYTES, HEADER_BYTES + idLength));
  } catch {
    throw new FrameError('the job id is not UTF-8');
  }
  // A typed array view needs a 4-byte aligned offset; Node's pooled Buffers need not give one.
  const aligned = (input.byteOffset + offset) % 4 === 0;
  const buffer = aligned ? input.buffer : input.slice(offset).buffer;
  const at = aligned ? input.byteOffset + offset : 0;
  const sample = (flags & FLAG_SAMPLE) !== 0;
  const rebuild = (flags & FLAG_REBUILD) !== 0;
  if (kind === 'hidden')
    return { kind, jobId, position, sample, rebuild, width, data: new Float32Array(buffer, at, rows * width) };
  return { kind, jobId, position, sample, rebuild, width: 1, data: new Int32Array(buffer, at, rows) };
}
