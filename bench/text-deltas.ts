// Streaming an answer's text from its token ids (issue 18, /v1 pipeline answers): the CPU time the server spends
// decoding, per answer length, when every token decodes the whole answer again (what /v1 pipeline answers did)
// against src/shared/text-deltas.ts (a window of a few tokens). CPU time of this process (process.cpuUsage), so other
// work on the machine does not count.
//   npx tsx bench/text-deltas.ts      (the bundled nano model's tokenizer, models/nano)
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { TextDeltas } from '../src/shared/text-deltas.ts';

const dir = path.join(import.meta.dirname, '..', 'models', 'nano');
const tokenizer = new PreTrainedTokenizer(
  JSON.parse(await readFile(path.join(dir, 'tokenizer.json'), 'utf8')) as object,
  JSON.parse(await readFile(path.join(dir, 'tokenizer_config.json'), 'utf8')) as object,
);
const decode = (ids: number[]) => tokenizer.decode(ids, { skip_special_tokens: true });
const text = 'To be, or not to be, that is the question: whether ’tis nobler in the mind to suffer. '.repeat(400);
const all = tokenizer.encode(text, { add_special_tokens: false });

/** CPU milliseconds to stream `count` tokens. */
function cpuMs(count: number, stream: (ids: number[]) => string): { ms: number; out: string } {
  const ids = all.slice(0, count);
  const start = process.cpuUsage();
  const out = stream(ids);
  const used = process.cpuUsage(start);
  return { ms: (used.user + used.system) / 1000, out };
}

const whole = (ids: number[]) => {
  let shown = '';
  for (let i = 1; i <= ids.length; i++) {
    const now = decode(ids.slice(0, i));
    if (now.length > shown.length && now.startsWith(shown) && !now.endsWith('\uFFFD')) shown = now;
  }
  return shown;
};
const windowed = (ids: number[]) => {
  const deltas = new TextDeltas(decode);
  let out = '';
  for (const id of ids) out += deltas.push(id);
  return out + deltas.rest();
};

console.log('tokens | whole answer each token, CPU ms | text-deltas, CPU ms | ratio');
for (const count of [256, 1024, 4096]) {
  const before = cpuMs(count, whole);
  const after = cpuMs(count, windowed);
  if (after.out !== before.out) throw new Error(`the two streams differ at ${count} tokens`);
  console.log(`${count} | ${before.ms.toFixed(0)} | ${after.ms.toFixed(0)} | ${(before.ms / after.ms).toFixed(1)}`);
}
