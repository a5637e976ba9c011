// TextDeltas with a real tokenizer: the tiny models' byte-level BPE (scripts/tiny-model/tokenizer.ts), where each
// byte of a character outside ASCII is a token of its own, so "é", "€" and "🙂" arrive split across 2, 3 and 4
// tokens, as a real model's byte-level vocabulary splits rarer characters.
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import { buildTokenizer } from '../../scripts/tiny-model/tokenizer.ts';
import { MAX_HELD_TOKENS, TextDeltas } from './text-deltas.ts';

const files = buildTokenizer();
const tokenizer = new PreTrainedTokenizer(files.tokenizer, files.tokenizerConfig);
/** The decodes TextDeltas asked for, by how many ids each took. */
const decodedLengths: number[] = [];
const decode = (ids: number[]) => {
  decodedLengths.push(ids.length);
  return tokenizer.decode(ids, { skip_special_tokens: true });
};
const idsOf = (text: string) => tokenizer.encode(text, { add_special_tokens: false });

describe('TextDeltas', () => {
  it('holds a character split across tokens back until its last token comes, then gives it whole', () => {
    const text = 'café € 🙂!';
    const ids = idsOf(text);
    // One token per byte: the test is about split characters.
    expect(ids).toHaveLength(new TextEncoder().encode(text).length);
    const deltas = new TextDeltas(decode);
    const seen = ids.map((id) => deltas.push(id));
    expect(seen.join('') + deltas.rest()).toBe(text);
    expect(seen.some((delta) => delta.includes('\uFFFD'))).toBe(false);
    // "é" is bytes 4 and 5 of "café": nothing after its first byte, all of it after its second.
    expect(seen.slice(3, 5)).toEqual(['', 'é']);
    // "🙂" is four tokens: three of nothing, then the character.
    const emoji = new TextEncoder().encode('café € ').length;
    expect(seen.slice(emoji, emoji + 4)).toEqual(['', '', '', '🙂']);
  });

  it('decodes a bounded window of recent tokens however long the answer is', () => {
    decodedLengths.length = 0;
    const deltas = new TextDeltas(decode);
    const text = 'Ünïcödé ✓ and 🙂 numbers 12345. '.repeat(80);
    let out = '';
    for (const id of idsOf(text)) out += deltas.push(id);
    expect(out + deltas.rest()).toBe(text);
    expect(idsOf(text).length).toBeGreaterThan(2000);
    // Two decodes a token, each of the last delta's tokens and those held since: never the whole answer.
    expect(Math.max(...decodedLengths)).toBeLessThanOrEqual(2 * MAX_HELD_TOKENS);
  });

  it('gives the model’s own broken bytes as U+FFFD after a character’s worth of tokens, and ends with what is held', () => {
    const deltas = new TextDeltas(decode);
    // Token ids are the bytes here; 0x80 is a continuation byte with no lead: nothing after it completes a character.
    expect(idsOf('a')).toEqual([0x61]);
    const lone = 0x80;
    const seen = [idsOf('a')[0]!, lone, lone, lone, lone].map((id) => deltas.push(id));
    expect(seen.slice(0, 4)).toEqual(['a', '', '', '']);
    expect(seen[4]).toMatch(/^\uFFFD+$/);
    // A split character at the very end is given as it decodes.
    const euro = idsOf('€');
    expect(deltas.push(euro[0]!)).toBe('');
    expect(deltas.rest()).toBe('\uFFFD');
    expect(deltas.rest()).toBe('');
  });

  it('moves past tokens that decode to nothing (special tokens), so they cannot grow the window', () => {
    decodedLengths.length = 0;
    const deltas = new TextDeltas(decode);
    const special = files.specialIds['<|im_start|>'];
    for (let i = 0; i < 100; i++) expect(deltas.push(special)).toBe('');
    expect(deltas.push(idsOf('x')[0]!)).toBe('x');
    expect(Math.max(...decodedLengths)).toBeLessThanOrEqual(2 * MAX_HELD_TOKENS);
  });
});
