// The bound that lets a whole-model /v1 job skip the server's tokenizer (fit-conversation.ts, mayOverflow): with the
// bundled nano model's real tokenizer and its catalogue entry (512 tokens), every conversation the bound calls safe
// does fit, across text of 1- to 4-byte characters; and the server's fit refuses a last message too long with 400.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { fitPrompt, promptIds } from '../../shared/chat-template.ts';
import type { ChatMessage } from '../../shared/schemas/chat.ts';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { stageTokenizers } from '../../shared/pipeline/stage-tokenizer.ts';
import { NANO_MODEL_DIR, loadNanoModel } from '../models/bundled.ts';
import { fitConversation, mayOverflow } from './fit-conversation.ts';
import type { PipelineTokenizer } from './pipeline-tokenizer.ts';

let entry: ManifestEntry;
let tokenizer: PreTrainedTokenizer;
let server: PipelineTokenizer;

beforeAll(async () => {
  const nano = await loadNanoModel();
  if (!nano) throw new Error('models/nano is missing: run `npm run model:nano`');
  entry = nano.entry;
  const json = async (name: string) => JSON.parse(await readFile(path.join(NANO_MODEL_DIR, name), 'utf8')) as object;
  tokenizer = new PreTrainedTokenizer(await json('tokenizer.json'), await json('tokenizer_config.json'));
  // The tokenizer the server reads from its model cache, here from the bundled model's folder.
  const tokenizers = stageTokenizers(async (url) => readFile(path.join(NANO_MODEL_DIR, url.slice('nano/'.length))));
  const files = { base: 'nano/', pinned: false };
  server = {
    tokenize: (messages, fit) => tokenizers.tokenize(files, messages, fit),
    decoder: () => tokenizers.decoder(files),
    held: () => Promise.resolve(true),
  };
});

const PIECES = ['ROMEO: ', 'what light ', 'café ', '€ ', '🙂', 'Ünïcödé ✓ ', '12345. ', '\n', '雨'];

function conversation(seed: number): ChatMessage[] {
  let state = seed;
  const next = (n: number) => ((state = (state * 1103515245 + 12345) % 2 ** 31), state % n);
  const messages: ChatMessage[] = next(3) === 0 ? [{ role: 'system', content: 'Speak as the players do.' }] : [];
  const turns = 1 + next(4);
  for (let i = 0; i < turns; i++) {
    const content = Array.from({ length: 1 + next(25) }, () => PIECES[next(PIECES.length)]).join('');
    messages.push({ role: i % 2 === 0 ? 'user' : 'assistant', content });
  }
  return messages;
}

describe('mayOverflow', () => {
  it('calls a conversation safe only when its prompt and answer do fit the context', () => {
    let safe = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const messages = conversation(seed);
      const maxNewTokens = [8, 40, 128][seed % 3] ?? 8;
      if (mayOverflow(entry, messages, maxNewTokens)) continue;
      safe++;
      expect(promptIds(tokenizer, messages).length + maxNewTokens, `seed ${seed}`).toBeLessThanOrEqual(
        entry.contextLength,
      );
    }
    // The bound is loose, not useless: most short conversations need no tokenizer.
    expect(safe).toBeGreaterThan(60);
    expect(mayOverflow(entry, [{ role: 'user', content: 'ROMEO:' }], 40)).toBe(false);
    // A `max_tokens` past the context (here of a 2048-token model): what must fit is the conversation and the
    // answer's reserve, half the context, and fitPrompt keeps such a conversation whole, only cutting max_tokens to
    // the room left (as the peer's engine does).
    const wide = { ...entry, contextLength: 2048 };
    const short: ChatMessage[] = [{ role: 'user', content: 'ROMEO: '.repeat(20) }];
    expect(mayOverflow(wide, short, 4096)).toBe(false);
    const fitted = fitPrompt(tokenizer, short, { context: wide.contextLength, maxNewTokens: 4096 });
    expect(fitted).toEqual({
      ids: promptIds(tokenizer, short),
      trimmed: 0,
      maxNewTokens: wide.contextLength - fitted.ids.length,
    });
    expect(mayOverflow(entry, [{ role: 'user', content: 'ROMEO: '.repeat(40) }], 40)).toBe(true);
  });
});

describe('fitConversation', () => {
  it('leaves the oldest turns out, and refuses a last message too long with 400 context_length_exceeded', async () => {
    const question: ChatMessage = { role: 'user', content: 'ROMEO:' };
    const long: ChatMessage[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'ROMEO: '.repeat(100) },
      { role: 'assistant', content: 'Aye.' },
      question,
    ];
    const fitted = await fitConversation(entry, long, 200, server);
    expect(fitted.used).toEqual([long[0], question]);
    expect(fitted.ids).toEqual(promptIds(tokenizer, [long[0]!, question]));
    expect(fitted.maxNewTokens).toBe(200);
    await expect(
      fitConversation(entry, [{ role: 'user', content: 'ROMEO: '.repeat(100) }], 200, server),
    ).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded', options: { param: 'messages' } });
  });
});
