// The browser pipeline route's answer text (src/client/features/chat/routes/pipeline.ts): the inference worker's
// stage host (src/worker/stage-worker-host.ts, here in this process behind a structured-clone port, as
// tests/stage-worker.test.ts drives it) turning a long answer's token ids into text as they come, one token at a
// time. Before: each token asked `stage-detokenize` for the whole answer so far (what the route did). After:
// `stage-text-deltas`, the worker's TextDeltas decoding a few ids a token. CPU time of this process (worker host and
// page side together: process.cpuUsage), wall time beside it; the bundled nano model's tokenizer, served over HTTP
// as the server's /models/ route serves it.
//   npx tsx bench/pipeline-text.ts      (BENCH_TOKENS=2048)
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { type StageWorkerPort, workerTokenizer } from '../src/shared/pipeline/worker-stage-session.ts';
import { createStageWorkerHost } from '../src/worker/stage-worker-host.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 2048);
const dir = path.join(import.meta.dirname, '..', 'models', 'nano');
const prefix = '/models/mesh/nano/resolve/main/';
const server = createServer((request, response) => {
  const url = request.url ?? '';
  const file = url.startsWith(prefix) ? path.join(dir, path.basename(url.slice(prefix.length))) : null;
  void (file ? stat(file) : Promise.reject(new Error('no'))).then(
    () => createReadStream(file!).pipe(response),
    () => response.writeHead(404).end(),
  );
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const modelHost = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/`;

function workerPort(): StageWorkerPort {
  const listeners = new Set<(event: { data: unknown }) => void>();
  const handle = createStageWorkerHost({ modelHost }, (reply) => {
    const data = structuredClone(reply);
    setImmediate(() => listeners.forEach((listener) => listener({ data })));
  });
  return {
    postMessage: (message) => void handle(structuredClone(message)),
    addEventListener: (_type, listener) => listeners.add(listener),
    removeEventListener: (_type, listener) => listeners.delete(listener),
  };
}

const node = new PreTrainedTokenizer(
  JSON.parse(await readFile(path.join(dir, 'tokenizer.json'), 'utf8')) as object,
  JSON.parse(await readFile(path.join(dir, 'tokenizer_config.json'), 'utf8')) as object,
);
const text = 'To be, or not to be, that is the question: whether ’tis nobler in the mind to suffer. '.repeat(400);
const ids = node.encode(text, { add_special_tokens: false }).slice(0, TOKENS);
if (ids.length < TOKENS) throw new Error(`only ${ids.length} tokens`);
const tokenizer = workerTokenizer(workerPort(), { repo: 'mesh/nano', revision: 'main' });
await tokenizer.detokenize(ids.slice(0, 8)); // the tokenizer loaded, as after the prompt's tokenize

/** The next token, a turn of the event loop later (tokens come a frame's round trip apart; replies get through). */
const nextToken = async () => {
  await new Promise((resolve) => setTimeout(resolve, 0));
  await new Promise((resolve) => setImmediate(resolve));
};

/** The route before: each token asked for the whole answer's text (one decode at a time, the latest ids each). */
async function wholeEachToken(count: number): Promise<string> {
  const got: number[] = [];
  let shown = '';
  let decoding: Promise<void> | null = null;
  let again = false;
  const refresh = () => {
    if (decoding) {
      again = true;
      return;
    }
    decoding = (async () => {
      do {
        again = false;
        const now = await tokenizer.detokenize([...got]);
        if (!now.endsWith('\uFFFD') && now.startsWith(shown)) shown = now;
      } while (again);
      decoding = null;
    })();
  };
  for (const id of ids.slice(0, count)) {
    got.push(id);
    refresh();
    await nextToken();
  }
  while (decoding) await decoding;
  // The answer's text: the whole answer's decode, once more (what was shown can lack a character cut at the end).
  return tokenizer.detokenize(ids.slice(0, count));
}

/** The route now: each token pushed to the answer's text stream in the worker. */
async function textDeltas(count: number): Promise<string> {
  let shown = '';
  const stream = tokenizer.textStream((piece) => (shown += piece));
  for (const id of ids.slice(0, count)) {
    stream.push(id);
    await nextToken();
  }
  await stream.end();
  // The route still decodes the whole answer once at the end, its text: the stream must have shown the same.
  const whole = await tokenizer.detokenize(ids.slice(0, count));
  if (shown !== whole) throw new Error('the streamed text differs from the whole answer');
  return whole;
}

/** The tokens' pacing alone, no text asked for: what both ways spend besides the worker's messages and decodes. */
async function pacingAlone(count: number): Promise<string> {
  for (let i = 0; i < count; i++) await nextToken();
  return tokenizer.detokenize(ids.slice(0, count));
}

const rows: { tokens: number; name: string; cpuMs: number; wallMs: number }[] = [];
for (const count of [512, TOKENS])
  for (let round = 0; round < 2; round++)
    for (const [name, run] of [
      ['pacing alone, no text', pacingAlone],
      ['whole answer each token (stage-detokenize)', wholeEachToken],
      ['text deltas in the worker (stage-text-deltas)', textDeltas],
    ] as const) {
      const expected = node.decode(ids.slice(0, count), { skip_special_tokens: true });
      const cpu = process.cpuUsage();
      const started = performance.now();
      const out = await run(count);
      const used = process.cpuUsage(cpu);
      if (out !== expected) throw new Error(`${name}: the text differs from the whole answer's decode`);
      rows.push({ tokens: count, name, cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - started });
    }
console.log('| tokens | way | CPU ms | wall ms |');
console.log('|---|---|---|---|');
for (const row of rows)
  console.log(`| ${row.tokens} | ${row.name} | ${row.cpuMs.toFixed(0)} | ${row.wallMs.toFixed(0)} |`);
server.close();
