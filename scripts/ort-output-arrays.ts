// The one line of ONNX Runtime Web (onnxruntime-web's dist/ort.webgpu.min.mjs, the build the app's worker imports)
// that makes a new typed array for each output of a run, and its rewrite that first asks the inference worker's
// OutputArrays for one on reused memory (src/worker/output-arrays.ts says why). Used by the build (vite.config.ts)
// and by bench/ort-builds.ts. The line is matched exactly: a new ONNX Runtime Web that changed it fails here.
import { OUTPUT_HOOK } from '../src/worker/output-arrays.ts';

/** In ONNX Runtime Web's `run`: `t` is the session id, `P` the output's typed array class, `X` its length. */
export const ORT_OUTPUT_LINE = 'let P=fe(O),M=new P(X);';
const HOOKED = `let P=fe(O),M=globalThis.${OUTPUT_HOOK}?.(t,P,X)??new P(X);`;

/** `code` (ort.webgpu.min.mjs) with the output line rewritten; throws when the line is not there exactly once. */
export function rewriteOrtOutputs(code: string, version: string): string {
  const at = code.indexOf(ORT_OUTPUT_LINE);
  if (at < 0 || code.indexOf(ORT_OUTPUT_LINE, at + 1) >= 0)
    throw new Error(`onnxruntime-web ${version}: its output array line (${ORT_OUTPUT_LINE}) is not there once`);
  return code.slice(0, at) + HOOKED + code.slice(at + ORT_OUTPUT_LINE.length);
}
