// Temperature and top-p sampling with a counter-based draw: the random number for a position depends only on
// the seed and that position, so a job resumed on another peer from "prompt + tokens so far" continues with
// exactly the tokens the first peer would have made.
import { LogitsProcessor, type Tensor } from '@huggingface/transformers';
import type { Sampling } from '../shared/engine-protocol.ts';
import { forbidEnd, sampleInPlace, uniform } from '../shared/sampling.ts';

// The draw itself is pure and shared with the pipeline's last stage (docs/pipeline.md).
export { sampleInPlace, uniform };

/**
 * Runs last in transformers.js' logits processors, with its own sampler set to greedy: this processor makes the
 * seeded choice and leaves only that token standing. Temperature 0 leaves the logits alone (plain greedy).
 */
export class SeededSampler extends LogitsProcessor {
  constructor(
    private readonly sampling: Pick<Sampling, 'temperature' | 'topP' | 'seed'>,
    private readonly seed: number,
  ) {
    super();
  }

  override _call(inputIds: bigint[][], logits: Tensor): Tensor {
    if (this.sampling.temperature <= 0) return logits;
    for (let batch = 0; batch < inputIds.length; batch++) {
      const row = (logits as unknown as Tensor[])[batch];
      if (!row) continue;
      // The position of the token being drawn: the same whichever peer draws it.
      sampleInPlace(row.data as Float32Array, this.sampling, uniform(this.seed, inputIds[batch]?.length ?? 0));
    }
    return logits;
  }
}

/**
 * Runs before the sampler (and before greedy): at the answer's first position (`answerStart`, the prompt's length)
 * the tokens that end an answer are out of the running, so an answer is never empty (forbidEnd).
 */
export class NoEmptyAnswer extends LogitsProcessor {
  constructor(
    private readonly answerStart: number,
    private readonly end: ReadonlySet<number>,
  ) {
    super();
  }

  override _call(inputIds: bigint[][], logits: Tensor): Tensor {
    for (let batch = 0; batch < inputIds.length; batch++) {
      const row = (logits as unknown as Tensor[])[batch];
      if (row && inputIds[batch]?.length === this.answerStart) forbidEnd(row.data as Float32Array, this.end);
    }
    return logits;
  }
}
