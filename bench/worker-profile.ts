// Where the browser engine's time goes during a steady answer (issue 19): a CPU profile of the inference worker.
//   npx tsx bench/worker-profile.ts        (BENCH_TOKENS=128; BENCH_PROFILE_OUT=<file.cpuprofile> keeps the profile)
// The app's built worker bundle, in headless Chromium (WASM, one thread), on a blank same-origin page of the real
// server, loads the generated benchmark model (bench/engine.ts's), answers twice (the first after load is not the
// steady state), then answers twice more under the V8 profiler of the worker, reached over the browser's DevTools
// protocol. Prints self time by function, the WebAssembly kernels summed apart from JavaScript, tok/s, and the minor
// page faults Chromium's processes took a token (Linux): a fault's cost lands in the self time of whichever function
// first touched the page (ONNX Runtime Web's `run` copying outputs into new arrays, before src/worker/output-arrays.ts).
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchChromium, workerSession } from '../tests/support/browser.ts';
import { BENCH_MESSAGES, serveBenchModel } from './bench-model.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
const MESSAGES = BENCH_MESSAGES;
const GREEDY = { temperature: 0, topP: 1, maxNewTokens: TOKENS };

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Minor page faults taken so far by every process whose command line names chromium (`/proc/<pid>/stat`, field 10). */
async function chromiumFaults(): Promise<number> {
  let total = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!(await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('chromium')) continue;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      total += Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

const { workerPath, model, server, stop } = await serveBenchModel(
  await mkdtemp(path.join(tmpdir(), 'mesh-bench-profile-')),
);
const browser = await launchChromium('no-gpu');
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${server.url}/api/health`);
  const session = await workerSession(page, workerPath);
  const ready = await session.load(model, 'wasm');
  if (ready.type !== 'ready') throw new Error(`load failed: ${ready.message}`);
  for (let i = 0; i < 2; i++) await session.generate(MESSAGES, GREEDY);

  // The worker's own DevTools session, through the browser's (messages wrapped for the attached target).
  const cdp = await browser.newBrowserCDPSession();
  const { targetInfos } = (await cdp.send('Target.getTargets')) as {
    targetInfos: { targetId: string; type: string; url: string }[];
  };
  const target = targetInfos.find((t) => t.type === 'worker' && t.url.includes('inference'));
  if (!target) throw new Error(`no inference worker among ${targetInfos.map((t) => t.type).join(', ')}`);
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId: target.targetId, flatten: false })) as {
    sessionId: string;
  };
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  cdp.on('Target.receivedMessageFromTarget', (event: { sessionId: string; message: string }) => {
    if (event.sessionId !== sessionId) return;
    const reply = JSON.parse(event.message) as { id?: number; result?: unknown; error?: unknown };
    if (reply.id !== undefined) pending.get(reply.id)?.(reply.error ? Promise.reject(reply.error) : reply.result);
  });
  const worker = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      void cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
    });
  await worker('Profiler.enable');
  await worker('Profiler.setSamplingInterval', { interval: 200 });
  const faultsBefore = await chromiumFaults();
  await worker('Profiler.start');
  const rates: number[] = [];
  for (let i = 0; i < 2; i++) {
    const done = await session.generate(MESSAGES, GREEDY);
    if (done.type !== 'complete') throw new Error(`generation failed: ${done.message}`);
    rates.push(done.tokensPerSecond);
  }
  const { profile } = (await worker('Profiler.stop')) as { profile: Profile };
  const faults = (await chromiumFaults()) - faultsBefore;
  if (process.env.BENCH_PROFILE_OUT) await writeFile(process.env.BENCH_PROFILE_OUT, JSON.stringify(profile));

  // Self time per function; WebAssembly functions summed as one line.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[i] ?? 0;
    total += delta;
    if (!node) return;
    const { functionName, url, lineNumber } = node.callFrame;
    const wasm = url.startsWith('wasm://') || functionName.startsWith('$') || /^wasm-function/.test(functionName);
    const key = wasm ? '(WebAssembly)' : `${functionName || '(anonymous)'} ${path.basename(url)}:${lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + delta);
  });
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 30);
  console.log(`two answers of ${TOKENS} tokens: ${rates.map((r) => r.toFixed(1)).join(', ')} tok/s`);
  console.log(`Chromium's processes took ${(faults / (2 * TOKENS)).toFixed(0)} minor page faults a token`);
  console.log(`profiled ${(total / 1000).toFixed(0)} ms of the worker's thread; self time:`);
  for (const [name, us] of top)
    console.log(
      `  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1000 / (2 * TOKENS)).toFixed(3)} ms/token  ${name}`,
    );
} finally {
  await browser.close();
  await stop();
}
