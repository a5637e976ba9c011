// Reads and writes ONNX models with onnx-proto (the package write-model.ts and read-weights.ts already use), with
// the weights inline or in an external data file: the layout ONNX exports use past protobuf's 2 GiB limit
// (`model.onnx` plus `model.onnx_data`, each initializer naming its `location`, `offset` and `length`).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto, { type onnx } from 'onnx-proto';

// onnx-proto is CommonJS: its namespace arrives on the default export.
export const proto = onnxProto.onnx;
const { EXTERNAL, DEFAULT } = proto.TensorProto.DataLocation;

/** Initializers at least this large go to the external data file when one is written (onnx's own default). */
const EXTERNAL_THRESHOLD_BYTES = 1024;
/** Offsets in the data file are aligned so a reader may map the file and view each tensor in place. */
const ALIGNMENT = 64;

function entry(tensor: onnx.ITensorProto, key: string): string | undefined {
  return tensor.externalData?.find((e) => e.key === key)?.value ?? undefined;
}

/** Decodes `file`, bringing every externally stored initializer's bytes inline (from files beside it). */
export async function readOnnx(file: string): Promise<onnx.ModelProto> {
  const model = proto.ModelProto.decode(await readFile(file));
  const dataFiles = new Map<string, Promise<Buffer>>();
  for (const tensor of model.graph?.initializer ?? []) {
    if (tensor.dataLocation !== EXTERNAL) continue;
    const location = entry(tensor, 'location');
    if (!location || path.isAbsolute(location) || location.split(/[\\/]/).includes('..'))
      throw new Error(`${file}: initializer ${tensor.name} has no usable external location (${location})`);
    const source = path.join(path.dirname(file), location);
    if (!dataFiles.has(source)) dataFiles.set(source, readFile(source));
    const data = await dataFiles.get(source)!;
    const offset = Number(entry(tensor, 'offset') ?? 0);
    const length = entry(tensor, 'length') === undefined ? data.length - offset : Number(entry(tensor, 'length'));
    if (offset + length > data.length)
      throw new Error(`${file}: initializer ${tensor.name} runs past the end of ${location}`);
    tensor.rawData = new Uint8Array(data.buffer, data.byteOffset + offset, length);
    tensor.externalData = [];
    tensor.dataLocation = DEFAULT;
  }
  return model;
}

export interface WriteOptions {
  /** Name of the external data file beside the model (e.g. `model.onnx_data`); inline weights when absent. */
  externalData?: string;
}

/** Encodes `model` into `file` (and its external data file), leaving `model` itself unchanged. */
export async function writeOnnx(file: string, model: onnx.IModelProto, options: WriteOptions = {}): Promise<void> {
  const location = options.externalData;
  if (!location) {
    await writeFile(file, proto.ModelProto.encode(model).finish());
    return;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const initializer = (model.graph?.initializer ?? []).map((tensor): onnx.ITensorProto => {
    const raw = tensor.rawData;
    if (!raw || raw.byteLength < EXTERNAL_THRESHOLD_BYTES) return tensor;
    const padding = (ALIGNMENT - (size % ALIGNMENT)) % ALIGNMENT;
    if (padding) chunks.push(new Uint8Array(padding));
    const offset = size + padding;
    chunks.push(raw);
    size = offset + raw.byteLength;
    return {
      ...tensor,
      rawData: null,
      dataLocation: EXTERNAL,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.byteLength) },
      ],
    };
  });
  const data = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.byteLength;
  }
  await writeFile(path.join(path.dirname(file), location), data);
  await writeFile(file, proto.ModelProto.encode({ ...model, graph: { ...model.graph, initializer } }).finish());
}
