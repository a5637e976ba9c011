// fitPrompt with the bundled nano model's real tokenizer (512 tokens of context): the fewest whole turns left out,
// found in a handful of tokenizations, exactly as dropping one turn at a time finds them.
import { readFile } from 'node:fs/promises';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { oneTurnAtATime as reference } from '../../tests/support/fit-reference.ts';
import { ContextOverflowError, type FittedPrompt, MIN_ANSWER_TOKENS, fitPrompt } from './chat-template.ts';
import type { EngineMessage } from './engine-protocol.ts';

const NANO = new URL('../../models/nano/', import.meta.url);
let tokenizer: PreTrainedTokenizer;

beforeAll(async () => {
  const json = async (name: string) => JSON.parse(await readFile(new URL(name, NANO), 'utf8')) as object;
  tokenizer = new PreTrainedTokenizer(await json('tokenizer.json'), await json('tokenizer_config.json'));
});

/** The way every chat was fitted before: one turn dropped, the whole prompt tokenized again, until it fits. */
const oneTurnAtATime = (messages: EngineMessage[], context: number, maxNewTokens: number) =>
  reference(tokenizer, messages, context, maxNewTokens);

/** A seeded conversation: turns of varied length, sometimes two user messages in a row, sometimes a system prompt. */
function conversation(seed: number): EngineMessage[] {
  let state = seed;
  const next = (n: number) => ((state = (state * 1103515245 + 12345) % 2 ** 31), state % n);
  const messages: EngineMessage[] = next(2) ? [{ role: 'system', content: 'Speak as the players do.' }] : [];
  const turns = 1 + next(40);
  for (let i = 0; i < turns; i++)
    messages.push({
      role: i === turns - 1 || next(5) === 0 || i % 2 === 0 ? 'user' : 'assistant',
      content: 'ROMEO: what light through yonder window breaks '.repeat(1 + next(12)),
    });
  return messages;
}

const outcome = (fit: () => FittedPrompt): FittedPrompt | Error => {
  try {
    return fit();
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
};

describe('fitPrompt', () => {
  it('leaves out the same turns as dropping one at a time, for 60 conversations and answer lengths', () => {
    let trimmedSome = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const messages = conversation(seed);
      const maxNewTokens = [8, 64, 256, 500, 4096][seed % 5] ?? 8;
      const expected = outcome(() => oneTurnAtATime(messages, 512, maxNewTokens));
      expect(
        outcome(() => fitPrompt(tokenizer, messages, { context: 512, maxNewTokens })),
        `seed ${seed}`,
      ).toEqual(expected);
      if (!(expected instanceof Error) && expected.trimmed > 0) trimmedSome++;
    }
    expect(trimmedSome).toBeGreaterThan(20);
  });

  it('tokenizes a conversation of 100 messages a handful of times, not once per turn it leaves out', () => {
    const messages: EngineMessage[] = Array.from({ length: 99 }, (_, i) => ({
      role: i % 2 ? 'assistant' : 'user',
      content: 'ROMEO: what light '.repeat(10),
    }));
    messages.push({ role: 'user', content: 'ROMEO:' });
    const tokenize = vi.spyOn(tokenizer, 'apply_chat_template');
    const fitted = fitPrompt(tokenizer, messages, { context: 512, maxNewTokens: 256 });
    const calls = tokenize.mock.calls.length;
    tokenize.mockRestore();
    expect(fitted).toEqual(oneTurnAtATime(messages, 512, 256));
    expect(fitted.trimmed).toBeGreaterThan(90);
    // The whole, the last turn, a few growing steps back from it and a bisection; one turn at a time took 50.
    expect(calls).toBeLessThanOrEqual(9);
  });

  it('refuses a last message that alone leaves no room, and cuts the answer to what a long one leaves', () => {
    const long = (n: number): EngineMessage[] => [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'ROMEO: '.repeat(40) },
      { role: 'user', content: 'ROMEO: '.repeat(n) },
    ];
    expect(() => fitPrompt(tokenizer, long(100), { context: 512, maxNewTokens: 64 })).toThrow(ContextOverflowError);
    const cut = fitPrompt(tokenizer, long(95), { context: 512, maxNewTokens: 64 });
    expect(cut).toMatchObject({ trimmed: 2, maxNewTokens: 512 - cut.ids.length });
    expect(cut.maxNewTokens).toBeGreaterThanOrEqual(MIN_ANSWER_TOKENS);
  });

  it('keeps the turns that fit in half the context when max_tokens asks for nearly all of it', () => {
    const turns: EngineMessage[] = Array.from({ length: 9 }, (_, i) => ({
      role: i % 2 ? 'assistant' : 'user',
      content: `ROMEO: turn ${i} `.repeat(4),
    }));
    const asked = fitPrompt(tokenizer, turns, { context: 512, maxNewTokens: 4096 });
    const half = fitPrompt(tokenizer, turns, { context: 512, maxNewTokens: 256 });
    // The same turns as a request for half the context: not only the last message.
    expect(asked.ids).toEqual(half.ids);
    expect(asked.trimmed).toBe(half.trimmed);
    expect(asked.trimmed).toBeLessThan(turns.length - 1);
    // The answer may use the rest of the context, not just the half kept free.
    expect(asked.maxNewTokens).toBe(512 - asked.ids.length);
    expect(asked.maxNewTokens).toBeGreaterThan(256);
  });
});
