// Turns generated token ids into text deltas as they arrive (src/shared/text-deltas.ts: a delta is held back while
// the decoded tail is an incomplete character, and only a small window is decoded each step).
import { BaseStreamer, type PreTrainedTokenizer } from '@huggingface/transformers';
import { TextDeltas } from '../shared/text-deltas.ts';

export interface StreamedToken {
  index: number;
  tokenId: number;
  text: string;
  at: number;
}

export class TokenStreamer extends BaseStreamer {
  private promptSeen = false;
  private readonly deltas: TextDeltas;
  private readonly prefixLength: number;

  /** `prefix`: answer tokens made before (a resumed job), replayed silently so later deltas match one whole run. */
  constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    prefix: readonly number[],
    private readonly onToken: (token: StreamedToken) => void,
  ) {
    super();
    this.deltas = new TextDeltas((ids) => this.decode(ids));
    this.prefixLength = prefix.length;
    for (const tokenId of prefix) this.deltas.push(tokenId);
  }

  get ids(): readonly number[] {
    return this.deltas.ids;
  }

  private decode(ids: number[]): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids, { skip_special_tokens: true });
  }

  override put(value: bigint[][]): void {
    // generate() first puts the whole prompt, then one token per step.
    if (!this.promptSeen) {
      this.promptSeen = true;
      return;
    }
    const tokenId = Number(value[0]?.[0] ?? -1);
    const text = this.deltas.push(tokenId);
    this.onToken({ index: this.ids.length - 1, tokenId, text, at: performance.now() });
  }

  override end(): void {}

  /** The answer after the prefix: decoded once more in full, so a character held back at the end is not lost. */
  finalText(): string {
    const whole = this.decode([...this.ids]);
    return whole.slice(this.decode(this.ids.slice(0, this.prefixLength)).length);
  }
}
