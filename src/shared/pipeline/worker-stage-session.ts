// A browser stage as the stage hosts see it: a StageSession whose graph runs in the inference worker (the
// `stage-*` messages of stage-worker-protocol.ts), while the hosts, their wires and data channels stay on the page.
// Each run takes the engine gate as mesh work, so this device's own chat goes first (docs/pipeline.md).
// A requester of a pipeline job reads its model's tokenizer through the same worker (`workerTokenizer`).
import type { EngineMessage } from '../engine-protocol.ts';
import type { EngineGate } from '../mesh/engine-gate.ts';
import type { StageSession } from './stage-session.ts';
import type { FittedTokens, StageOpened, StageWorkerReply, StageWorkerRequest } from './stage-worker-protocol.ts';

/** The part of `Worker` a browser stage uses. */
export interface StageWorkerPort {
  postMessage(message: StageWorkerRequest): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  removeEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

export class StageWorkerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'StageWorkerError';
  }
}

let sequence = 0;

function request<T extends StageWorkerReply['type']>(
  port: StageWorkerPort,
  message: StageWorkerRequest,
  until: T,
): Promise<Extract<StageWorkerReply, { type: T }>> {
  return new Promise((resolve, reject) => {
    const listener = (event: { data: unknown }) => {
      const reply = event.data as StageWorkerReply | null;
      if (reply?.requestId !== message.requestId) return;
      if (reply.type !== until && reply.type !== 'stage-error') return;
      port.removeEventListener('message', listener);
      if (reply.type === 'stage-error') reject(new StageWorkerError(reply.code, reply.message));
      else resolve(reply as Extract<StageWorkerReply, { type: T }>);
    };
    port.addEventListener('message', listener);
    port.postMessage(message);
  });
}

export type WorkerStage = StageSession & { opened: StageOpened };

/**
 * Opens stage `index` of `model`'s stage manifest in the worker behind `port`; with `gate`, every run of it waits
 * for the engine as mesh work.
 */
export async function openWorkerStage(
  port: StageWorkerPort,
  open: Omit<Extract<StageWorkerRequest, { type: 'stage-open' }>, 'type' | 'requestId' | 'stageId'>,
  gate?: EngineGate,
): Promise<WorkerStage> {
  const stageId = `stage-${++sequence}-${open.index}`;
  const id = (kind: string) => `${kind}-${++sequence}`;
  const {
    type: _type,
    requestId: _id,
    ...opened
  } = await request(port, { type: 'stage-open', requestId: id('open'), stageId, ...open }, 'stage-ready');
  return {
    opened,
    inputs: opened.inputs,
    outputs: opened.outputs,
    async run(feeds) {
      // A frame's run is short: local work arriving meanwhile waits for it rather than stopping it.
      const release = gate ? await gate.acquire('mesh') : () => {};
      try {
        const reply = await request(port, { type: 'stage-run', requestId: id('run'), stageId, feeds }, 'stage-result');
        return reply.outputs;
      } finally {
        release();
      }
    },
    async release() {
      await request(port, { type: 'stage-release', requestId: id('release'), stageId }, 'stage-released');
    },
  };
}

/** The tokenizer of `model` in the worker behind `port`: what a requester of a pipeline job needs of its model. */
export function workerTokenizer(port: StageWorkerPort, model: { repo: string; revision: string }) {
  const id = (kind: string) => `${kind}-${++sequence}`;
  return {
    /**
     * The prompt's ids and end tokens; with `fit`, fitted to the context as the engine fits a conversation (the
     * oldest turns left out, `maxNewTokens` cut to the room left), else a StageWorkerError `CONTEXT_OVERFLOW`.
     */
    async tokenize(
      messages: EngineMessage[],
      fit?: { context: number; maxNewTokens: number },
    ): Promise<{ ids: number[]; eos: number[]; fitted?: FittedTokens }> {
      const {
        type: _type,
        requestId: _id,
        ...tokens
      } = await request(
        port,
        { type: 'stage-tokenize', requestId: id('tokenize'), model, messages, ...(fit ? { fit } : {}) },
        'stage-tokens',
      );
      return tokens;
    },
    async detokenize(ids: number[]): Promise<string> {
      const reply = await request(
        port,
        { type: 'stage-detokenize', requestId: id('detokenize'), model, ids },
        'stage-text',
      );
      return reply.text;
    },
    /**
     * An answer's text as its tokens come, decoded in the worker a few ids at a time (`stage-text-deltas`, the
     * worker's TextDeltas): `push` each token; `onText` gets the text as it completes, in order (a character split
     * across tokens once its last token came). One request at a time, with every id not sent yet, so a busy worker
     * gets fewer, larger ones. `end` sends the rest and settles once every text is out; the worker then forgets it.
     */
    textStream(onText: (text: string) => void) {
      const streamId = id('text');
      const ids: number[] = [];
      let sent = 0;
      let ending = false;
      let ended = false;
      let failure: unknown = null;
      let pumping: Promise<void> | null = null;
      const pump = async () => {
        while (failure === null && (sent < ids.length || (ending && !ended))) {
          const batch = ids.slice(sent);
          const end = ending;
          const reply = await request(
            port,
            { type: 'stage-text-deltas', requestId: id('text'), model, streamId, from: sent, ids: batch, end },
            'stage-text',
          );
          sent += batch.length;
          ended = end;
          if (reply.text) onText(reply.text);
        }
      };
      const kick = () => {
        pumping ??= pump()
          .catch((error: unknown) => void (failure = error))
          .finally(() => {
            pumping = null;
            // Ids pushed while the last request's reply was on its way.
            if (failure === null && sent < ids.length) kick();
          });
      };
      return {
        push(tokenId: number) {
          ids.push(tokenId);
          kick();
        },
        async end(): Promise<void> {
          ending = true;
          while (pumping) await pumping;
          kick();
          while (pumping) await pumping;
          if (failure !== null) throw failure;
        },
      };
    },
  };
}
export type WorkerTokenizer = ReturnType<typeof workerTokenizer>;
