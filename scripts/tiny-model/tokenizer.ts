// tokenizer.json / tokenizer_config.json for the tiny models: byte-level BPE (GPT-2's byte-to-unicode map),
// optional merges, and ChatML special tokens with a chat template.

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** GPT-2's reversible map from bytes to printable characters. */
export function byteToUnicode(): string[] {
  const printable = [
    ...Array.from({ length: 94 }, (_, i) => 33 + i),
    ...Array.from({ length: 12 }, (_, i) => 161 + i),
    ...Array.from({ length: 82 }, (_, i) => 174 + i),
  ];
  const map: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  return map;
}

export interface TokenizerFiles {
  tokenizer: object;
  tokenizerConfig: object;
  vocabSize: number;
  specialIds: Record<(typeof SPECIAL_TOKENS)[number], number>;
}

/** `words`: extra tokens made of byte-level characters, each reachable through `merges` (may be empty). */
export function buildTokenizer(
  merges: [string, string][] = [],
  words: string[] = [],
  maxLength = 2048,
): TokenizerFiles {
  const vocab: Record<string, number> = {};
  for (const char of byteToUnicode()) vocab[char] = Object.keys(vocab).length;
  for (const word of words) if (!(word in vocab)) vocab[word] = Object.keys(vocab).length;
  const base = Object.keys(vocab).length;
  const specialIds = Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, base + i])) as TokenizerFiles['specialIds'];
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    vocabSize: base + SPECIAL_TOKENS.length,
    specialIds,
    tokenizer: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: SPECIAL_TOKENS.map((content) => ({
        id: specialIds[content],
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: null,
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: merges.map(([a, b]) => `${a} ${b}`),
      },
    },
    tokenizerConfig: {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: null,
      eos_token: '<|im_end|>',
      pad_token: '<|endoftext|>',
      unk_token: null,
      add_bos_token: false,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
      model_max_length: maxLength,
      chat_template: CHAT_TEMPLATE,
    },
  };
}
