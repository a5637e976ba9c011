// `npm run peer -- --server URL --room R --model M [--name N] [--token=T]`: a headless peer that joins a room,
// loads the model through the server's proxy, shares its compute and prints a live status line; Ctrl-C leaves
// the room cleanly. `npm run peer` runs it as `node --import tsx`, one process that gets the signal itself: tsx's own
// CLI runs a script in a child process and relays a signal to it, and a child that does not confirm it within 30 ms
// (tsx 4's relaySignals; a busy machine's child often cannot) is killed with SIGKILL, the CLI exiting 130, so the
// peer never left its room cleanly. The peer itself (transformers.js, ONNX Runtime) is imported only once the
// arguments are checked, so a mistake in them is answered at once, not after seconds of loading.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { PeerStatus } from './headless-peer.ts';

const USAGE = `Usage: npm run peer -- --server URL --room ROOM --model MODEL_ID [--name NAME] [--token=SESSION_TOKEN] [--invite CODE] [--cache-dir DIR]
                   [--stage FROM-TO|auto [--stage-dir DIR] [--stage-memory MIB]]

  --server     the Mesh NanoLLM server, e.g. http://127.0.0.1:8787
  --room       a room slug (global, or a custom room: that needs --token of an account that may join it)
  --model      a model of the server's catalogue, as this peer's account sees it: its id (e.g. nano-shakespeare), or
               the Hub repo id or URL of one added by repo id (e.g. onnx-community/Qwen3-0.6B-ONNX; with --token of
               the account that added it, unless an operator added it for everyone)
  --name       display name of the guest this peer signs in as
  --token      an account's session token (its mesh_session cookie) instead of a guest; give it as --token=…
               (a token may start with "-", which would otherwise read as another option)
  --invite     invite code of a private room
  --cache-dir  where model files are kept between runs (default ./data/peer-cache)
  --threads    ONNX Runtime threads (default: every core; give each of several peers on one machine fewer)
  --stage      host a pipeline stage of the model instead of the whole model: layers FROM (included) to TO
               (excluded), e.g. 0-2, loaded now; or auto, the layers a requester's plan gives it, loaded when asked
  --stage-dir  a model directory its stages come from: stages.json manifests (scripts/tiny-model/stages.ts,
               scripts/pipeline/split.ts) and/or the whole onnx/model.onnx, which any range is cut from;
               without it the whole model comes through the server's proxy and its layers are cut from that
  --stage-memory  at most this many MiB offered to stages (planning reads it; default: the machine's free memory)`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      server: { type: 'string' },
      room: { type: 'string' },
      model: { type: 'string' },
      name: { type: 'string' },
      token: { type: 'string' },
      invite: { type: 'string' },
      'cache-dir': { type: 'string' },
      threads: { type: 'string' },
      stage: { type: 'string' },
      'stage-dir': { type: 'string' },
      'stage-memory': { type: 'string' },
      // Test only: a dishonest peer whose tokens the spot checks must catch.
      'corrupt-tokens': { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  }).values;
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
if (parsed.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const { server, room, model } = parsed;
if (!server || !room || !model) fail('--server, --room and --model are required');
const threads = parsed.threads === undefined ? undefined : Number(parsed.threads);
if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 256))
  fail(`--threads must be a whole number from 1 to 256, not ${parsed.threads}`);
const stageMatch = parsed.stage === undefined ? null : /^(\d{1,4})-(\d{1,4})$/.exec(parsed.stage);
if (
  parsed.stage !== undefined &&
  parsed.stage !== 'auto' &&
  !(stageMatch && Number(stageMatch[1]) < Number(stageMatch[2]))
)
  fail(`--stage must be FROM-TO (layers, FROM below TO, e.g. 0-2) or auto, not ${parsed.stage}`);
const stage =
  parsed.stage === 'auto'
    ? ('auto' as const)
    : stageMatch
      ? ([Number(stageMatch[1]), Number(stageMatch[2])] as [number, number])
      : undefined;
if (parsed['stage-dir'] && !stage) fail('--stage-dir is for a stage peer: give --stage too');
const stageMemory = parsed['stage-memory'] === undefined ? undefined : Number(parsed['stage-memory']);
if (stageMemory !== undefined && !(Number.isInteger(stageMemory) && stageMemory >= 1))
  fail(`--stage-memory must be a whole number of MiB, not ${parsed['stage-memory']}`);
if (!URL.canParse(server) || !/^https?:$/.test(new URL(server).protocol))
  fail(`--server must be an http(s) URL, not ${server}`);

const interactive = process.stdout.isTTY === true;
const print = (line: string) => process.stdout.write(interactive ? `\r\x1b[2K${line}` : `${line}\n`);
const describe = (status: PeerStatus) =>
  `${status.name} in ${status.room}: ${status.peers} peers · ${status.jobsServed} jobs served · ${status.running} running · ${status.tokensPerSecond === null ? '— tok/s' : `${status.tokensPerSecond.toFixed(1)} tok/s`}`;

const { HeadlessPeer } = await import('./headless-peer.ts');
const peer = new HeadlessPeer({
  server: new URL(server).origin,
  room,
  model,
  ...(parsed.name ? { name: parsed.name } : {}),
  ...(parsed.token ? { token: parsed.token } : {}),
  ...(parsed.invite ? { invite: parsed.invite } : {}),
  cacheDir: parsed['cache-dir'] ?? path.join('data', 'peer-cache'),
  ...(threads ? { threads } : {}),
  ...(stage ? { stage } : {}),
  ...(stage && parsed['stage-dir'] ? { stageDir: parsed['stage-dir'] } : {}),
  ...(stageMemory ? { stageMemoryMb: stageMemory } : {}),
  corruptTokens: parsed['corrupt-tokens'] ?? false,
  log: (line) => process.stdout.write(`${line}\n`),
  onEnded: (reason) => {
    process.stderr.write(`${interactive ? '\n' : ''}${reason}\n`);
    void peer.stop().finally(() => process.exit(1));
  },
});

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  if (interactive) process.stdout.write('\n');
  process.stdout.write(`${signal}: leaving the room\n`);
  await peer.stop();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

try {
  await peer.start();
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  await peer.stop().catch(() => undefined);
  process.exit(1);
}
// Every change when there is a terminal to redraw; otherwise (logs) when something changed, at most once a second.
let last = '';
setInterval(
  () => {
    const line = describe(peer.status());
    if (interactive || line !== last) print(line);
    last = line;
  },
  interactive ? 250 : 1000,
);
