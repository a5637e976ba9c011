// What a stage runner needs of ONNX Runtime: one graph's session, whichever build runs it (onnxruntime-node in the
// headless peer, onnxruntime-web in a browser). Environment-neutral: no Node or DOM here.

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
