// The generated benchmark model of the engine benchmarks (bench/engine.ts, bench/worker-profile.ts,
// bench/ort-builds.ts; bench/README.md, "Benchmark model") and the real server that serves it as people get it: the
// built client, a fake Hub, the model published there and downloaded through the server's proxy.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { FakeHub } from '../scripts/fake-hub.ts';
import { generateRandomModel } from '../scripts/tiny-model/generate.ts';
import type { EngineMessage, EngineModel } from '../src/shared/engine-protocol.ts';
import { buildClient } from '../tests/support/browser.ts';
import { publishModels } from '../tests/support/model-fixtures.ts';
import { type ServerProcess, downloadModel, signUpCookie, startServer } from '../tests/support/server-process.ts';

export const BENCH = { layers: 8, hidden: 512, heads: 8, seed: 42, maxPositions: 1024 };
/** The chat the engine benchmarks answer: 87 prompt tokens on the benchmark model with the chat template. */
export const BENCH_MESSAGES: EngineMessage[] = [
  { role: 'user', content: 'Write a long story about a mesh of browsers sharing one small model.' },
];
export const BENCH_DIR = process.env.BENCH_MODEL_DIR ?? '/tmp/models/mesh/bench';

/** Generates the benchmark model into BENCH_DIR unless it is there. */
export async function ensureBenchModel(): Promise<void> {
  if (existsSync(path.join(BENCH_DIR, 'onnx/model.onnx'))) return;
  console.log(`generating the benchmark model into ${BENCH_DIR} ...`);
  await generateRandomModel(BENCH_DIR, BENCH);
}

export interface BenchServer {
  server: ServerProcess;
  /** URL path of the built inference worker. */
  workerPath: string;
  /** The benchmark model as the engine loads it, downloaded into the server's cache. */
  model: EngineModel;
  stop(): Promise<void>;
}

/** The client built into `<dir>/dist`, the server started on it, and the benchmark model in its cache. */
export async function serveBenchModel(dir: string): Promise<BenchServer> {
  await ensureBenchModel();
  const hub = new FakeHub();
  await hub.start();
  const { manifestPath, published } = await publishModels(hub, dir, [
    { id: 'bench', from: BENCH_DIR, contextLength: BENCH.maxPositions },
  ]);
  // Built before the server starts: it registers the built files at start-up.
  const { workerPath } = await buildClient(path.join(dir, 'dist'));
  const server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    HF_ENDPOINT: hub.origin,
    MANIFEST_PATH: manifestPath,
    CLIENT_DIST_DIR: path.join(dir, 'dist'),
  });
  const stop = async () => {
    server.child.kill('SIGTERM');
    await server.exited;
    await hub.stop();
  };
  try {
    await downloadModel(server.url, await signUpCookie(server.url, 'bench'), 'bench');
    const model = published.bench?.model;
    if (!model) throw new Error('the benchmark model was not published');
    return { server, workerPath, model, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
