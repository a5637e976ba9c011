// Generated token ids to text deltas as they arrive, for the engine's streamer (src/worker/token-streamer.ts) and
// the server's /v1 pipeline answers (src/server/openai/pipeline-chat.ts). Byte-level BPE splits a character across
// tokens, so a delta is held back while the decoded tail is an incomplete character (U+FFFD). Only a small window is
// decoded each time (text-generation-inference's prefix and read offsets: the last delta's tokens, for the
// tokenizer's context such as a leading space, then the tokens not shown yet), so each token costs the same however
// long the answer is, where decoding the whole answer again made an answer of n tokens cost O(n²).

/** A UTF-8 character spans at most four bytes: past that many held tokens, U+FFFD is the model's own output. */
export const MAX_HELD_TOKENS = 4;

export class TextDeltas {
  readonly ids: number[] = [];
  /** Where the window starts: the tokens of the last delta, kept as context. */
  private prefixOffset = 0;
  /** Tokens before this are shown. */
  private readOffset = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  private text(ids: number[]): string {
    return ids.length === 0 ? '' : this.decode(ids);
  }

  /** Adds a token; returns the text it completes (empty while a character is still incomplete). */
  push(tokenId: number): string {
    this.ids.push(tokenId);
    const held = this.ids.length - this.readOffset;
    const before = this.text(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.text(this.ids.slice(this.prefixOffset));
    const incomplete = after.endsWith('\uFFFD') && held < MAX_HELD_TOKENS;
    if (incomplete) return '';
    if (after.length > before.length) {
      this.advance();
      return after.slice(before.length);
    }
    // Tokens that add no text (special tokens, skipped) move the window on too once a character's worth came, so
    // the window stays bounded whatever the model emits.
    if (held >= MAX_HELD_TOKENS) this.advance();
    return '';
  }

  /** The text still held back at the end (an incomplete character, as U+FFFD): the answer's last delta. */
  rest(): string {
    const before = this.text(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.text(this.ids.slice(this.prefixOffset));
    this.advance();
    return after.length > before.length ? after.slice(before.length) : '';
  }

  private advance(): void {
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
  }
}
