// Weights in external data files, as exports of models over 2 GB (and Optimum's for transformers.js) store them:
// the graph keeps each large initializer's name and shape, and points at `location`, `offset`, `length` in
// `<graph>.onnx_data`, or in `_data`, `_data_1`, ... when split into chunks (transformers.js fetches the chunk
// count that config.json's `transformers.js_config.use_external_data_format` gives).
import onnxProto, { type onnx } from 'onnx-proto';

const proto = onnxProto.onnx;
/** onnx.external_data_helper's default: smaller tensors stay in the graph. */
const SIZE_THRESHOLD = 1024;
/** Offsets aligned as onnx.external_data_helper aligns them, so a reader may map the file. */
const ALIGN = 4096;

export interface ExternalFile {
  /** The file's name beside the graph: `model.onnx_data`, `model.onnx_data_1`, ... */
  name: string;
  bytes: Uint8Array;
}

/** transformers.js' names for `chunks` data files of the graph `fileName` (utils/model-loader.js). */
export function chunkNames(fileName: string, chunks: number): string[] {
  return Array.from({ length: chunks }, (_, i) => `${fileName}_data${i === 0 ? '' : `_${i}`}`);
}

/**
 * Moves the initializers of `model` of at least 1 KiB into `chunks` data files of about equal size (each tensor
 * whole, in graph order) and returns the graph and the files.
 */
export function withExternalData(
  model: onnx.IModelProto,
  fileName: string,
  chunks: number,
): { graph: Uint8Array; files: ExternalFile[] } {
  if (!Number.isInteger(chunks) || chunks < 1) throw new Error(`chunks must be a positive integer, not ${chunks}`);
  const initializers = model.graph?.initializer ?? [];
  const large = initializers.filter((t) => (t.rawData?.byteLength ?? 0) >= SIZE_THRESHOLD);
  const total = large.reduce((n, t) => n + (t.rawData?.byteLength ?? 0), 0);
  const names = chunkNames(fileName, chunks);
  const parts: Uint8Array[][] = names.map(() => []);
  const offsets = names.map(() => 0);
  let placed = 0;
  const moved = new Map<onnx.ITensorProto, onnx.ITensorProto>();
  for (const tensor of large) {
    const raw = tensor.rawData ?? new Uint8Array();
    // The chunk this tensor's first byte falls in, were the bytes spread evenly.
    const chunk = Math.min(chunks - 1, Math.floor((placed * chunks) / Math.max(1, total)));
    placed += raw.byteLength;
    const padding = (ALIGN - ((offsets[chunk] ?? 0) % ALIGN)) % ALIGN;
    if (padding) parts[chunk]?.push(new Uint8Array(padding));
    const offset = (offsets[chunk] ?? 0) + padding;
    parts[chunk]?.push(raw);
    offsets[chunk] = offset + raw.byteLength;
    moved.set(tensor, {
      ...tensor,
      rawData: undefined,
      dataLocation: proto.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: names[chunk] },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.byteLength) },
      ],
    });
  }
  const graph = proto.ModelProto.encode({
    ...model,
    graph: { ...model.graph, initializer: initializers.map((t) => moved.get(t) ?? t) },
  }).finish();
  return { graph, files: names.map((name, i) => ({ name, bytes: Buffer.concat(parts[i] ?? []) })) };
}
