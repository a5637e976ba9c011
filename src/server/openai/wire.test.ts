import { describe, expect, it } from 'vitest';
import { ChunkWriter, completionMeta } from './wire.ts';

/** A text chunk as OpenAI sends it, serialized whole: what ChunkWriter.delta must equal byte for byte. */
function reference(meta: ReturnType<typeof completionMeta>, includeUsage: boolean, text: string): string {
  const body = {
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }],
  };
  return `data: ${JSON.stringify(includeUsage ? { ...body, usage: null } : body)}\n\n`;
}

describe('ChunkWriter.delta', () => {
  const texts = [
    '',
    'ROMEO:',
    ' the',
    '""',
    '\\"',
    'a\nb\r\n\t',
    '\u0000\u001f',
    'é 日本 🙂',
    '\ud800 lone',
    '</script>',
  ];
  // Model names as clients send them, a quote and an empty string among them (the text's place is found from the end).
  for (const model of ['nano-shakespeare', 'openai/gpt-4o-mini', 'a "quoted" ""', ''])
    for (const includeUsage of [false, true])
      it(`gives the whole-object bytes for model ${JSON.stringify(model)}, include_usage ${includeUsage}`, () => {
        const meta = completionMeta(model);
        const writer = new ChunkWriter(meta, includeUsage);
        for (const text of texts) {
          const chunk = writer.delta(text);
          expect(chunk).toBe(reference(meta, includeUsage, text));
          const parsed = JSON.parse(chunk.slice('data: '.length)) as { choices: { delta: { content: string } }[] };
          expect(parsed.choices[0]?.delta.content).toBe(text);
        }
      });
});
