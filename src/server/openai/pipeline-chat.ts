// A /v1 chat on a catalogue model that nobody in the room shares whole but whose layers a chain of stage peers
// hosts (docs/pipeline.md, "Asking from /v1"): the server's requester member of the room runs it through the one
// pipeline answer there is (askPipeline, src/shared/pipeline/pipeline-answer.ts: the browser's pipeline route runs it
// too), so it is recorded and spot-checked as the app's are, with the model's tokenizer read from the server's own
// model cache (pipeline-tokenizer.ts). It yields the same events as a whole-model mesh chat (mesh-chat.ts), so the
// route writes both the same way.
import { performance } from 'node:perf_hooks';
import type { HeadlessPeer } from '../../peer/headless-peer.ts';
import type { ChatMessage, ChatStreamEvent } from '../../shared/schemas/chat.ts';
import type { JobSampling } from '../../shared/peer-protocol.ts';
import { type ManifestEntry, modelFingerprint } from '../../shared/schemas/models.ts';
import { type PipelineOutcome, askPipeline } from '../../shared/pipeline/pipeline-answer.ts';
import { PipelineJobError } from '../../shared/pipeline/pipeline-requester.ts';
import type { StagePlacement } from '../../shared/pipeline/room-pipeline.ts';
import { TextDeltas } from '../../shared/text-deltas.ts';
import { OpenAIError } from './errors.ts';
import type { RecorderFor } from './mesh-records.ts';
import type { MeshGateway } from './mesh-gateway.ts';
import { AnswerTexts, recordsGate } from './answer-texts.ts';
import type { PipelineTokenizer } from './pipeline-tokenizer.ts';
import { type FittedConversation, fitConversation } from './fit-conversation.ts';
import { type SlotRelease, SlotWaitTimeout } from './slot-queue.ts';

/** Prompt rows per frame: stages work on a long prompt at once (docs/pipeline.md, "The stage runtime"). */
const PROMPT_CHUNK = 64;
/** After a stage refused the job as busy (its other requesters' jobs), the job waits this long for a place again. */
const BUSY_BACKOFF_MS = 1000;

export interface PipelineChat {
  entry: ManifestEntry;
  room: string;
  messages: ChatMessage[];
  sampling: JobSampling;
  tokenizer: PipelineTokenizer;
  /** The job's records as the key's account, written once the answer is out (mesh-records.ts, serviceRecorder). */
  recorder: RecorderFor;
  /** When the request began (the answer's time to first token counts from it). */
  started: number;
  phase: (name: string) => void;
  /** The conversation already fitted to the model's context (mesh-chat.ts fits it before choosing the route). */
  fitted?: FittedConversation | null;
}

const unavailable = (chat: PipelineChat, why: string) =>
  OpenAIError.unavailable(`The pipeline job on ${chat.entry.id} in room ${chat.room} ${why}`, 5);

/** The model version the chain's stages are cut from (docs/pipeline.md#stage-fingerprints): the record's sha256. */
async function chainVersion(member: HeadlessPeer, entry: ManifestEntry, chain: StagePlacement[]) {
  const version = member.node?.peer(chain[0]?.peerId ?? '')?.capabilities?.pipeline?.version;
  return version ?? modelFingerprint(entry.repo, entry.revision, entry.dtype.wasm);
}

/** Text as the last stage samples it, then `done`. Returning early (the client left) closes the job on every stage. */
export async function* answerOnPipeline(
  gateway: MeshGateway,
  member: HeadlessPeer,
  chat: PipelineChat,
  signal: AbortSignal,
): AsyncGenerator<ChatStreamEvent> {
  const node = member.node;
  if (!node) throw unavailable(chat, 'has no room member to run it');
  const { entry, room, sampling } = chat;
  // The prompt's ids, fitted to the model's context as whole-model and the app's pipeline chats are (the oldest
  // turns left out), with the conversation they came from (what a whole-model checker re-runs).
  const prompted = chat.fitted ?? (await fitConversation(entry, chat.messages, sampling.maxNewTokens, chat.tokenizer));
  const deltas = new TextDeltas(await chat.tokenizer.decoder());
  const eos = new Set(prompted.eos);
  chat.phase('prompt');
  const release = gateway.hold(member);
  const queue = gateway.pipelineQueue(member, entry.id);
  const waitUntil = performance.now() + gateway.waitMs;
  // The job stops when the client leaves, and when this generator is returned early.
  const stop = new AbortController();
  const abort = () => stop.abort();
  signal.addEventListener('abort', abort, { once: true });
  if (signal.aborted) stop.abort();
  let tokens = 0;
  let firstAt: number | null = null;
  let slot: SlotRelease | null | undefined;
  /** This attempt's text; settled once askPipeline resolved or rejected (its records finished). */
  let texts: AnswerTexts | null = null;
  let writeRecords = () => {};
  let outcome: PipelineOutcome | null = null;
  try {
    for (let retry = false; ; retry = true) {
      slot = await queue
        .acquire({ waitMs: Math.max(0, waitUntil - performance.now()), signal: stop.signal, first: retry })
        .catch((error: unknown) => {
          throw error instanceof SlotWaitTimeout
            ? unavailable(
                chat,
                `waited ${Math.round(gateway.waitMs / 1000)} s for a place at its stage peers: try again shortly`,
              )
            : error;
        });
      chat.phase('slot');
      const chain = node.pipelines.chain(entry.id);
      if (!chain) throw unavailable(chat, 'has no chain of peers holding every layer any more');
      const gate = recordsGate();
      writeRecords = gate.open;
      const current = new AnswerTexts();
      texts = current;
      let failure: unknown = null;
      const asked = askPipeline(
        { room, node },
        chat.recorder(gate.ready),
        {
          model: { id: entry.id, sha256: await chainVersion(member, entry, chain) },
          job: { temperature: sampling.temperature, topP: sampling.topP, seed: sampling.seed },
          prompt: prompted.ids,
          maxNewTokens: prompted.maxNewTokens,
          eos,
          chunk: PROMPT_CHUNK,
          stages: chain,
          messages: prompted.used,
          signal: stop.signal,
          onEnded: () => {
            // A character still held back goes out with the answer's last text.
            const rest = deltas.rest();
            if (rest) current.push(rest);
            current.end();
          },
        },
        (token) => {
          if (tokens++ === 0) {
            firstAt = performance.now();
            chat.phase('token');
          }
          const text = deltas.push(token);
          if (text) current.push(text);
        },
      ).then(
        (done) => (outcome = done),
        (error: unknown) => (failure = error),
      );
      void asked.finally(() => current.settle());
      // Every text is with the route (it asked for the next event): the records may be written now.
      for await (const text of current.read(gate.open)) yield { type: 'delta', text };
      // The stage peers are done with it: its place goes to the next job waiting.
      slot?.(failure instanceof PipelineJobError && failure.code === 'BUSY' ? BUSY_BACKOFF_MS : undefined);
      slot = null;
      if (!failure) break;
      // Stage peers busy with other requesters' jobs refuse at once: the job waits for a place again, first in line.
      if (failure instanceof PipelineJobError && failure.code === 'BUSY' && tokens === 0 && !stop.signal.aborted) {
        if (performance.now() < waitUntil) continue;
        throw unavailable(chat, `found every stage peer busy: try again shortly (${failure.message})`);
      }
      if (stop.signal.aborted || (failure instanceof PipelineJobError && failure.code === 'ABORTED')) throw failure;
      if (failure instanceof PipelineJobError) {
        throw failure.code === 'NO_PEER'
          ? unavailable(chat, `found no chain of peers holding every layer (${failure.message})`)
          : unavailable(chat, `failed: ${failure.message}`);
      }
      throw failure;
    }
    const done = outcome as PipelineOutcome | null;
    if (!done || done.stopped) throw unavailable(chat, 'was stopped');
    const last = done.tokenIds.at(-1);
    yield {
      type: 'done',
      finishReason:
        last !== undefined && !eos.has(last) && done.tokenIds.length >= prompted.maxNewTokens ? 'length' : 'stop',
      model: entry.id,
      usage: { promptTokens: prompted.ids.length, completionTokens: done.tokenIds.length },
      timings: {
        ttftMs: firstAt === null ? null : Math.round(firstAt - chat.started),
        totalMs: Math.round(performance.now() - chat.started),
        tokensPerSecond: done.readout?.tokensPerSecond || null,
      },
    };
  } finally {
    signal.removeEventListener('abort', abort);
    // Stopped early (the client left): the job is closed on every stage within a token.
    if (!texts?.settled) stop.abort();
    // Stopped early or failed: the records still go in (a cancelled or failed job's finish).
    writeRecords();
    slot?.();
    // A spot check re-runs the answer after it is out: the member stays until it is over.
    const check = (outcome as PipelineOutcome | null)?.check;
    if (check) void check.then(release, release);
    else release();
  }
}
