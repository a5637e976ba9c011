// Digests of an ONNX graph's files: the graph and the external data files beside it (`model.onnx_data`,
// `model.onnx_data_1`, ...), what a stage's fingerprint and a model version are made of (docs/pipeline.md#stage-fingerprints).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The sha256 of `file` and of each of its external data files (named after it), in name order. */
export async function graphDigests(file: string): Promise<string[]> {
  const base = path.basename(file);
  const siblings = (await readdir(path.dirname(file))).filter((name) => name.startsWith(`${base}_data`)).sort();
  return Promise.all([file, ...siblings.map((name) => path.join(path.dirname(file), name))].map(sha256File));
}

/** One digest for a whole graph and its data: the model version of stages cut from it. */
export async function graphVersion(file: string): Promise<string> {
  return createHash('sha256')
    .update((await graphDigests(file)).join('\n'))
    .digest('hex');
}
