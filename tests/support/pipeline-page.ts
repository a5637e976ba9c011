// Bundled (esbuild) into a test page: browser stages of a model opened in the app's inference worker, hosted on
// the page and chained over in-memory wires, as tests/e2e/pipeline-browser.test.ts drives them. Exposes
// `globalThis.meshStages`.
import { EngineGate } from '../../src/shared/mesh/engine-gate.ts';
import { type ConnectedPipeline, inProcessPipeline } from '../../src/shared/pipeline/in-process.ts';
import {
  type StageWorkerPort,
  type WorkerStage,
  openWorkerStage,
} from '../../src/shared/pipeline/worker-stage-session.ts';
import type { StageOpened } from '../../src/shared/pipeline/stage-worker-protocol.ts';

export interface PageJob {
  prompt: number[];
  maxNewTokens: number;
  eos: number[];
  temperature: number;
  topP: number;
  seed: number;
  chunk?: number;
}

export interface PageStages {
  /** Opens stages 0..count-1 of the manifest in a new inference worker (a page holds one pipeline at a time). */
  open(options: {
    workerPath: string;
    model: { repo: string; revision: string };
    manifest: string;
    count: number;
    backend: 'auto' | 'webgpu' | 'wasm';
  }): Promise<StageOpened[]>;
  /** Runs each job through the pipeline in turn: its tokens and the milliseconds it took. */
  generate(jobs: PageJob[]): Promise<{ tokens: number[]; ms: number; firstMs: number }[]>;
  /** A raw stage request to the worker, and its reply (for the refusals). */
  raw(message: unknown): Promise<unknown>;
  /** Closes the pipeline, releases the stages and ends the worker. */
  close(): Promise<void>;
}

type PageWorker = StageWorkerPort & { terminate(): void; postMessage(message: unknown): void };
const WorkerClass = (globalThis as unknown as { Worker: new (url: string, options: { type: 'module' }) => PageWorker })
  .Worker;

let worker: PageWorker | null = null;
let stages: WorkerStage[] = [];
let pipeline: ConnectedPipeline | null = null;
let jobs = 0;

const meshStages: PageStages = {
  async open({ workerPath, model, manifest, count, backend }) {
    await meshStages.close();
    worker = new WorkerClass(workerPath, { type: 'module' });
    const gate = new EngineGate();
    stages = [];
    for (let index = 0; index < count; index++)
      stages.push(await openWorkerStage(worker, { model, manifest, index, backend }, gate));
    pipeline = inProcessPipeline(stages);
    return stages.map((s) => s.opened);
  },
  async generate(list) {
    if (!pipeline) throw new Error('no pipeline is open');
    const results = [];
    for (const job of list) {
      const tokens: number[] = [];
      const started = performance.now();
      let firstMs = 0;
      for await (const token of pipeline.generate(
        { temperature: job.temperature, topP: job.topP, seed: job.seed },
        {
          jobId: `page-job-${++jobs}`,
          prompt: job.prompt,
          maxNewTokens: job.maxNewTokens,
          eos: new Set(job.eos),
          chunk: job.chunk,
        },
      )) {
        if (tokens.length === 0) firstMs = performance.now() - started;
        tokens.push(token);
      }
      results.push({ tokens, ms: performance.now() - started, firstMs });
    }
    return results;
  },
  raw(message) {
    const port = worker;
    if (!port) throw new Error('no worker');
    return new Promise((resolve) => {
      const listener = (event: { data: unknown }) => {
        if ((event.data as { requestId?: string }).requestId !== (message as { requestId: string }).requestId) return;
        port.removeEventListener('message', listener);
        resolve(event.data);
      };
      port.addEventListener('message', listener);
      port.postMessage(message);
    });
  },
  async close() {
    await pipeline?.close();
    pipeline = null;
    await Promise.all(stages.map((s) => s.release().catch(() => undefined)));
    stages = [];
    worker?.terminate();
    worker = null;
  },
};

(globalThis as unknown as { meshStages: PageStages }).meshStages = meshStages;
