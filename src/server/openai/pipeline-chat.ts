// A /v1 chat on a catalogue model that nobody in the room shares whole but whose layers a chain of stage peers
// hosts (docs/pipeline.md, "Asking from /v1"): the server's requester member of the room runs it as a pipeline job
// (RoomPipeline, the same code the app's chat and the headless peer run), with the model's tokenizer read from the
// server's own model cache (pipeline-tokenizer.ts). It yields the same events as a whole-model mesh chat
// (mesh-chat.ts), so the route writes both the same way.
import { performance } from 'node:perf_hooks';
import type { FastifyBaseLogger } from 'fastify';
import type { HeadlessPeer } from '../../peer/headless-peer.ts';
import type { ChatMessage, ChatStreamEvent } from '../../shared/schemas/chat.ts';
import type { JobSampling } from '../../shared/peer-protocol.ts';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { PipelineJobError } from '../../shared/pipeline/pipeline-requester.ts';
import type { PipelineReadout, StagePlacement } from '../../shared/pipeline/room-pipeline.ts';
import type { PrismaClient } from '../db/client.ts';
import type { PeerLookup } from '../services/jobs.ts';
import { type PipelineJobRecord, type StagePeer, recordPipelineJob } from '../services/pipeline-jobs.ts';
import { OpenAIError } from './errors.ts';
import type { MeshGateway } from './mesh-gateway.ts';
import type { PipelineTokenizer } from './pipeline-tokenizer.ts';
import { type SlotRelease, SlotWaitTimeout } from './slot-queue.ts';

/** Prompt rows per frame: stages work on a long prompt at once (docs/pipeline.md, "The stage runtime"). */
const PROMPT_CHUNK = 64;
/** After a stage refused the job as busy (its other requesters' jobs), the job waits this long for a place again. */
const BUSY_BACKOFF_MS = 1000;

/** Job records of the server's pipeline jobs, as the key's account (services/pipeline-jobs.ts). */
export interface PipelineRecorder {
  /** Looks `peerId` up in the room's presence now, as it takes its stage (it may have left when the row is written). */
  took(room: string, peerId: string): Promise<StagePeer>;
  /** Writes the record of a job that is over. */
  write(record: PipelineJobRecord): Promise<unknown>;
}

export function pipelineRecorder(
  db: PrismaClient,
  peers: PeerLookup,
  userId: string,
  log: FastifyBaseLogger,
): PipelineRecorder {
  return {
    took: (room, peerId) => {
      const peer = peers(room, peerId);
      peer.catch(() => undefined);
      return peer;
    },
    write: (record) =>
      recordPipelineJob(db, userId, record).catch((error: unknown) =>
        log.error({ err: error }, 'could not record a /v1 pipeline job'),
      ),
  };
}

export interface PipelineChat {
  entry: ManifestEntry;
  room: string;
  messages: ChatMessage[];
  sampling: JobSampling;
  tokenizer: PipelineTokenizer;
  recorder: PipelineRecorder;
  /** When the request began (the answer's time to first token counts from it). */
  started: number;
  phase: (name: string) => void;
}

const unavailable = (chat: PipelineChat, why: string) =>
  OpenAIError.unavailable(`The pipeline job on ${chat.entry.id} in room ${chat.room} ${why}`, 5);

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
  const prompted = await chat.tokenizer.tokenize(chat.messages);
  const left = entry.contextLength - prompted.ids.length;
  if (left < 1)
    throw new OpenAIError(
      400,
      'invalid_request_error',
      'context_length_exceeded',
      `The messages take ${prompted.ids.length} tokens, which fill ${entry.id}'s context of ${entry.contextLength}`,
      { param: 'messages' },
    );
  const maxNewTokens = Math.min(sampling.maxNewTokens, left);
  const eos = new Set(prompted.eos);
  chat.phase('prompt');
  const release = gateway.hold(member);
  const queue = gateway.pipelineQueue(member, entry.id);
  const waitUntil = performance.now() + gateway.waitMs;
  const ids: number[] = [];
  let shown = '';
  /** The job's place at its stage peers, while it holds one. */
  const held: { slot: SlotRelease | null } = { slot: null };
  let readout: PipelineReadout | null = null;
  let placement: StagePlacement[] = [];
  let peers: PipelineJobRecord['peers'] = [];
  let takenAt: Date | null = null;
  let firstAt: number | null = null;
  let ended: { outcome: 'COMPLETED' | 'FAILED'; errorCode: string | null } | null = null;
  try {
    for (let retry = false; ; retry = true) {
      held.slot = await queue
        .acquire({ waitMs: Math.max(0, waitUntil - performance.now()), signal, first: retry })
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
      placement = chain;
      takenAt = new Date();
      peers = chain.map(({ peerId, layers }) => ({ peerId, layers, peer: chat.recorder.took(room, peerId) }));
      const tokens = node.pipelines.generate({
        model: entry.id,
        stages: chain,
        job: { temperature: sampling.temperature, topP: sampling.topP, seed: sampling.seed },
        prompt: prompted.ids,
        maxNewTokens,
        eos,
        chunk: PROMPT_CHUNK,
        signal,
        onReadout: (done) => (readout = done),
      });
      try {
        for await (const token of tokens) {
          if (ids.length === 0) {
            firstAt = performance.now();
            chat.phase('token');
          }
          ids.push(token);
          const text = await chat.tokenizer.detokenize(ids);
          // A character split across tokens decodes as U+FFFD until its last token comes.
          if (text.length > shown.length && text.startsWith(shown) && !text.endsWith('\uFFFD')) {
            const delta = text.slice(shown.length);
            shown = text;
            yield { type: 'delta', text: delta };
          }
        }
        break;
      } catch (error) {
        // Stage peers busy with other requesters' jobs refuse at once: the job waits for a place again, first in line.
        if (error instanceof PipelineJobError && error.code === 'BUSY' && ids.length === 0 && !signal.aborted) {
          held.slot?.(BUSY_BACKOFF_MS);
          held.slot = null;
          if (performance.now() < waitUntil) continue;
          throw unavailable(chat, `found every stage peer busy: try again shortly (${error.message})`);
        }
        throw error;
      }
    }
    const text = await chat.tokenizer.detokenize(ids);
    if (text.length > shown.length && text.startsWith(shown)) yield { type: 'delta', text: text.slice(shown.length) };
    ended = { outcome: 'COMPLETED', errorCode: null };
    const done = readout as PipelineReadout | null;
    const last = ids.at(-1);
    yield {
      type: 'done',
      finishReason: last !== undefined && !eos.has(last) && ids.length >= maxNewTokens ? 'length' : 'stop',
      model: entry.id,
      usage: { promptTokens: prompted.ids.length, completionTokens: ids.length },
      timings: {
        ttftMs: firstAt === null ? null : Math.round(firstAt - chat.started),
        totalMs: Math.round(performance.now() - chat.started),
        tokensPerSecond: done?.tokensPerSecond || null,
      },
    };
  } catch (error) {
    if (signal.aborted || (error instanceof PipelineJobError && error.code === 'ABORTED')) throw error;
    ended = { outcome: 'FAILED', errorCode: error instanceof PipelineJobError ? error.code : 'FAILED' };
    if (error instanceof PipelineJobError) {
      throw error.code === 'NO_PEER'
        ? unavailable(chat, `found no chain of peers holding every layer (${error.message})`)
        : unavailable(chat, `failed: ${error.message}`);
    }
    throw error;
  } finally {
    held.slot?.();
    release();
    if (takenAt) {
      const done = readout as PipelineReadout | null;
      const record: PipelineJobRecord = {
        room,
        modelId: entry.id,
        startedAt: takenAt,
        modelSha256: node.peer(placement[0]?.peerId ?? '')?.capabilities?.pipeline?.version ?? null,
        stages: placement.length,
        peers: [
          ...peers,
          ...(done?.failovers ?? []).map(({ to, layers }) => ({
            peerId: to,
            layers,
            peer: chat.recorder.took(room, to),
          })),
        ],
        lastPeerId: done?.stages.at(-1)?.peerId ?? placement.at(-1)?.peerId ?? null,
        // Neither done nor failed: stopped early (the client left).
        outcome: ended?.outcome ?? 'CANCELLED',
        tokensIn: prompted.ids.length,
        tokensOut: ids.length,
        ttftMs: done?.ttftMs ?? null,
        tokensPerSecond: done?.tokensPerSecond || null,
        failoverCount: done?.failovers.length ?? 0,
        errorCode: ended?.errorCode ?? null,
      };
      // A turn of the event loop first, for the route to write what it was handed (as for whole-model jobs).
      setImmediate(() => void chat.recorder.write(record));
    }
  }
}
