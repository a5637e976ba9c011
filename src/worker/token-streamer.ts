// Turns generated token ids into text deltas as they arrive. Byte-level BPE splits characters across tokens,
// so a delta is held back while the decoded tail is an incomplete character (U+FFFD); decoding only a small
// window (the text-generation-inference offsets) keeps each step O(1) instead of re-decoding the whole answer.
import { BaseStreamer, type PreTrainedTokenizer } from '@huggingface/transformers';

export interface StreamedToken {
  index: number;
  tokenId: number;
  text: string;
  at: number;
}

export class TokenStreamer extends BaseStreamer {
  readonly ids: number[] = [];
  private promptSeen = false;
  private prefixOffset = 0;
  private readOffset = 0;
  private readonly prefixLength: number;

  /** `prefix`: answer tokens made before (a resumed job), replayed silently so later deltas match one whole run. */
  constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    prefix: readonly number[],
    private readonly onToken: (token: StreamedToken) => void,
  ) {
    super();
    this.prefixLength = prefix.length;
    for (const tokenId of prefix) this.push(tokenId);
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
    const text = this.push(tokenId);
    this.onToken({ index: this.ids.length - 1, tokenId, text, at: performance.now() });
  }

  /** Adds a token; returns the text it completes (empty while a character is still incomplete). */
  private push(tokenId: number): string {
    this.ids.push(tokenId);
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    let delta = '';
    // A UTF-8 character spans at most four bytes: past that, the replacement character is the model's own output.
    const incomplete = after.endsWith('\uFFFD') && this.ids.length - this.readOffset < 4;
    if (after.length > before.length && !incomplete) {
      delta = after.slice(before.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
    }
    return delta;
  }

  override end(): void {}

  /** The answer after the prefix: decoded once more in full, so a character held back at the end is not lost. */
  finalText(): string {
    const whole = this.decode(this.ids);
    return whole.slice(this.decode(this.ids.slice(0, this.prefixLength)).length);
  }
}
