// What a stage runner needs of ONNX Runtime: one graph's session, whichever build runs it (onnxruntime-node in the
// headless peer, onnxruntime-web in a browser). Environment-neutral: no Node or DOM here.

/** A later stage's input and an earlier stage's output: the residual stream, float32 [batch, sequence, hidden]. */
export const HIDDEN_INPUT = 'hidden_states';
export const HIDDEN_OUTPUT = 'hidden_states_out';

export type StageTensor =
  | { type: 'float32'; data: Float32Array; dims: readonly number[] }
  | { type: 'int64'; data: BigInt64Array; dims: readonly number[] };

export interface StageValueInfo {
  name: string;
  /** Dimensions as the graph declares them: a number where fixed, a name where dynamic. */
  shape: readonly (number | string)[];
}

export interface StageSession {
  readonly inputs: readonly StageValueInfo[];
  readonly outputs: readonly StageValueInfo[];
  run(feeds: Record<string, StageTensor>): Promise<Record<string, StageTensor>>;
  release(): Promise<void>;
}
