// Fitting a /v1 conversation to a model's context (README, "Context"): the CPU time of the server's thread for a
// conversation of 100 messages (what /v1 accepts at most) of 1,200 characters each, past the bundled nano model's
// 512 tokens, when one turn is dropped and the whole prompt tokenized again until it fits (how fitPrompt did it)
// against src/shared/chat-template.ts's fitPrompt now (a search from the newest turns). CPU time of this process
// (process.cpuUsage), so other work on the machine counts little; the median of RUNS.
//   npx tsx bench/fit-conversation.ts      (the bundled nano model's tokenizer, models/nano)
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { type FittedPrompt, fitPrompt, promptIds } from '../src/shared/chat-template.ts';
import type { EngineMessage } from '../src/shared/engine-protocol.ts';
import { oneTurnAtATime } from '../tests/support/fit-reference.ts';

const RUNS = 5;
const dir = path.join(import.meta.dirname, '..', 'models', 'nano');
const tokenizer = new PreTrainedTokenizer(
  JSON.parse(await readFile(path.join(dir, 'tokenizer.json'), 'utf8')) as object,
  JSON.parse(await readFile(path.join(dir, 'tokenizer_config.json'), 'utf8')) as object,
);

function conversation(messages: number, chars: number): EngineMessage[] {
  const line = 'ROMEO: But soft, what light through yonder window breaks? ';
  const list: EngineMessage[] = Array.from({ length: messages - 1 }, (_, i) => ({
    role: i % 2 ? 'assistant' : 'user',
    content: line.repeat(Math.ceil(chars / line.length)).slice(0, chars),
  }));
  list.push({ role: 'user', content: 'ROMEO:' });
  return list;
}

function cpuMs(fit: () => FittedPrompt): { ms: number; fitted: FittedPrompt } {
  const times: number[] = [];
  let fitted: FittedPrompt | null = null;
  for (let run = 0; run < RUNS; run++) {
    const start = process.cpuUsage();
    fitted = fit();
    const used = process.cpuUsage(start);
    times.push((used.user + used.system) / 1000);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(RUNS / 2)] ?? 0, fitted: fitted as FittedPrompt };
}

promptIds(tokenizer, [{ role: 'user', content: 'warm-up' }]);
console.log('| messages × characters | one turn at a time, CPU ms | fitPrompt now, CPU ms | turns left out |');
console.log('|---|---|---|---|');
for (const [messages, chars] of [
  [10, 1200],
  [100, 120],
  [100, 1200],
] as const) {
  const list = conversation(messages, chars);
  const old = cpuMs(() => oneTurnAtATime(tokenizer, list, 512, 256));
  const now = cpuMs(() => fitPrompt(tokenizer, list, { context: 512, maxNewTokens: 256 }));
  if (old.fitted.trimmed !== now.fitted.trimmed || old.fitted.ids.join() !== now.fitted.ids.join())
    throw new Error(`the two ways disagree for ${messages} messages of ${chars} characters`);
  console.log(`| ${messages} × ${chars} | ${old.ms.toFixed(0)} | ${now.ms.toFixed(0)} | ${now.fitted.trimmed} |`);
}
