// A /v1 chat on a catalogue model: the job goes to a peer of the room that shares it, through the server's
// requester member there (mesh-gateway.ts) and the one mesh answer there is (src/shared/mesh/mesh-answer.ts), and
// comes back as the same events a provider's chat yields, so the route writes both the same way. A model nobody
// there shares whole but whose layers a chain of stage peers holds runs as a pipeline job (pipeline-chat.ts).
import { performance } from 'node:perf_hooks';
import type { ChatMessage, ChatStreamEvent } from '../../shared/schemas/chat.ts';
import { type JobRecorder, type MeshAnswer, askMesh } from '../../shared/mesh/mesh-answer.ts';
import type { RecorderFor } from './mesh-records.ts';
import { AnswerTexts, recordsGate } from './answer-texts.ts';
import { MeshJobError, type MeshOutcome } from '../../shared/mesh/job-requester.ts';
import type { JobSampling, ModelRef } from '../../shared/peer-protocol.ts';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { randomInt } from 'node:crypto';
import { ENGINE_LIMITS } from '../../shared/engine-protocol.ts';
import { RoomSlugSchema } from '../../shared/socket-contract.ts';
import type { Database } from '../db/client.ts';
import { GLOBAL_ROOM, isMember, roomBySlug } from '../services/room.ts';
import { OpenAIError } from './errors.ts';
import { CONNECTING_WAIT_MS, type MeshGateway, settle } from './mesh-gateway.ts';
import { type SlotRelease, SlotWaitTimeout } from './slot-queue.ts';
import { answerOnPipeline } from './pipeline-chat.ts';
import type { PipelineTokenizer } from './pipeline-tokenizer.ts';
import { type FittedConversation, fitConversation, mayOverflow } from './fit-conversation.ts';

/** After the peers refused a job as busy, jobs wait for places given back here, or this long, before asking again. */
const BUSY_BACKOFF_MS = 1000;

export interface MeshChat {
  entry: ManifestEntry;
  room: string;
  userId: string;
  messages: ChatMessage[];
  sampling: JobSampling;
  /** Releases the stream's place in the account's cap (MeshGateway.admit): called once the chat ends, however. */
  admitted: () => void;
  /** Marks the end of a phase before the first token (the route's Server-Timing): fit, member, slot, offer, token. */
  phase?: (name: string) => void;
  /**
   * The model's tokenizer from the server's cache: what a pipeline job needs, for a model nobody in the room shares
   * whole but whose layers stage peers host (pipeline-chat.ts), and what fits a whole-model job's conversation to the
   * context before a peer is asked (fit-conversation.ts); without it a pipeline model is refused as one nobody
   * shares, and a whole-model job's peer fits the conversation itself.
   */
  pipeline?: { tokenizer: PipelineTokenizer };
}

/** X-Mesh-Room's room (default global), if the key's account may ask it: the global room, or one it belongs to. */
export async function meshRoomOf(database: Database, header: unknown, userId: string): Promise<string> {
  if (header === undefined) return GLOBAL_ROOM;
  const slug = RoomSlugSchema.safeParse(header);
  if (!slug.success)
    throw OpenAIError.invalidRequest(`Invalid X-Mesh-Room header: ${slug.error.issues[0]?.message ?? 'bad room'}`);
  if (slug.data === GLOBAL_ROOM) return GLOBAL_ROOM;
  const found = await roomBySlug(database.prisma, slug.data);
  // The signaling layer lets only members into a room other than global, so only members' keys can ask one.
  if (!found || !(await isMember(database.prisma, found.id, userId))) {
    throw new OpenAIError(
      404,
      'invalid_request_error',
      'room_not_found',
      `No room ${slug.data} among the rooms this key's account has joined (X-Mesh-Room)`,
    );
  }
  return slug.data;
}

/** A mesh job's sampling: every field set (a seed drawn here when the client sent none, so failover continues identically). */
export function meshSampling(sampling: {
  temperature?: number | undefined;
  topP?: number | undefined;
  maxTokens?: number | undefined;
  seed?: number | undefined;
  stop?: string[] | undefined;
}): JobSampling {
  if (sampling.stop?.length)
    throw OpenAIError.invalidRequest(
      "`stop` is not supported on mesh models (their peers end at the model's own end)",
      'stop',
    );
  return {
    temperature: sampling.temperature ?? 0.7,
    topP: sampling.topP ?? 0.95,
    maxNewTokens: Math.min(sampling.maxTokens ?? 256, ENGINE_LIMITS.maxNewTokens),
    seed: sampling.seed ?? randomInt(0, 0xffff_ffff),
  };
}

/** The fingerprint most sharing peers in the room hold for `id` (all of them, normally), or null if none shares it. */
function sharedRef(views: { capabilities: { models: ModelRef[]; sharing: boolean } | null }[], id: string) {
  const counts = new Map<string, number>();
  for (const view of views) {
    if (!view.capabilities?.sharing) continue;
    for (const model of view.capabilities.models)
      if (model.id === id) counts.set(model.sha256, (counts.get(model.sha256) ?? 0) + 1);
  }
  const [best] = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  return best ? { id, sha256: best[0] } : null;
}

/** Text as the peers make it, then `done`. Returning early (the client left) cancels the job within a token. */
export async function* runMeshChat(
  gateway: MeshGateway,
  recorder: RecorderFor,
  chat: MeshChat,
  signal: AbortSignal,
): AsyncGenerator<ChatStreamEvent> {
  try {
    yield* answerOnMesh(gateway, recorder, chat, signal);
  } finally {
    chat.admitted();
  }
}

async function* answerOnMesh(
  gateway: MeshGateway,
  recorder: RecorderFor,
  chat: MeshChat,
  signal: AbortSignal,
): AsyncGenerator<ChatStreamEvent> {
  const started = performance.now();
  const phase = chat.phase ?? (() => {});
  // Fitted here, before any peer is asked, for whole-model and pipeline jobs alike (README, "Context"): a last
  // message that alone leaves no room is the client's 400 without any peer offered the job. A model whose tokenizer
  // the server does not hold is fitted by its peer's engine, the same way (fitPrompt), whose refusal
  // (CONTEXT_OVERFLOW) ends the job at once and becomes the same 400 below; one whose
  // conversation is short enough to fit, whatever its tokens, is not tokenized here (a pipeline job is, later).
  const tokenizer = chat.pipeline?.tokenizer;
  const fitted: FittedConversation | null =
    tokenizer && mayOverflow(chat.entry, chat.messages, chat.sampling.maxNewTokens) && (await tokenizer.held())
      ? await fitConversation(chat.entry, chat.messages, chat.sampling.maxNewTokens, tokenizer)
      : null;
  phase('fit');
  // The oldest turns left out, `max_tokens` cut to what is left: the peer's engine finds nothing more to trim, and
  // the offer, its deadline and a spot check's re-run all carry the job as it runs.
  const messages = fitted?.used ?? chat.messages;
  const sampling = fitted ? { ...chat.sampling, maxNewTokens: fitted.maxNewTokens } : chat.sampling;
  const member = await gateway.member(chat.room, chat.userId).catch((error: unknown) => {
    throw OpenAIError.unavailable(
      `The server could not join room ${chat.room} to ask its peers: ${error instanceof Error ? error.message : String(error)}`,
      5,
    );
  });
  const node = member.node;
  const whole = () => (node ? sharedRef(node.list(), chat.entry.id) : null);
  // Else a chain of stage peers holding every layer, which the server runs as a pipeline job (pipeline-chat.ts).
  const chained = () => Boolean(chat.pipeline && node?.pipelines.chain(chat.entry.id));
  let ref = whole();
  if (node && !ref && !chained()) {
    await settle(member, () => whole() !== null || chained(), CONNECTING_WAIT_MS);
    ref = whole();
  }
  if (node && !ref && chat.pipeline && chained()) {
    phase('member');
    yield* answerOnPipeline(gateway, member, { ...chat, ...chat.pipeline, fitted, recorder, started, phase }, signal);
    return;
  }
  if (!node || !ref) {
    const staged = node?.list().some((peer) => peer.capabilities?.pipeline?.model === chat.entry.id);
    throw OpenAIError.unavailable(
      staged
        ? `No peer in room ${chat.room} shares ${chat.entry.id} right now, and no chain of its stage peers there holds every layer: add a stage peer (\`npm run peer -- --room ${chat.room} --model ${chat.entry.id} --stage auto\`), then try again`
        : `No peer in room ${chat.room} shares ${chat.entry.id} right now: open it in the app or run \`npm run peer -- --room ${chat.room} --model ${chat.entry.id}\`, then try again`,
      5,
    );
  }
  phase('member');
  const release = gateway.hold(member);
  const queue = gateway.queue(member, ref);
  const waitUntil = performance.now() + gateway.waitMs;
  const busy = (waited: string) =>
    OpenAIError.unavailable(
      `Every peer in room ${chat.room} that shares ${chat.entry.id} is busy${waited}: try again shortly`,
      5,
    );
  const texts = new AnswerTexts();
  let sent = 0;
  let answer: MeshAnswer | null = null;
  let slot: SlotRelease | null = null;
  let writeRecords = () => {};
  const stop = () => answer?.stop();
  signal.addEventListener('abort', stop, { once: true });
  let firstAt: number | null = null;
  try {
    let result: Promise<MeshOutcome | null>;
    for (let retry = false; ; retry = true) {
      const left = Math.max(0, waitUntil - performance.now());
      slot = await queue.acquire({ waitMs: left, signal, first: retry }).catch((error: unknown) => {
        throw error instanceof SlotWaitTimeout ? busy(` (waited ${Math.round(gateway.waitMs / 1000)} s)`) : error;
      });
      phase('slot');
      let texted: () => void = () => {};
      const textCame = new Promise<boolean>((resolve) => (texted = () => resolve(false)));
      const gate = recordsGate();
      writeRecords = gate.open;
      const records = recorder(gate.ready);
      // The job's record starts when the first peer accepts it (the offer's round trip ends there).
      const marked: JobRecorder = {
        ...records,
        start: (input) => {
          phase('offer');
          return records.start(input);
        },
      };
      const asked = askMesh({ room: chat.room, node }, marked, ref, messages, sampling, (text) => {
        if (sent === 0) phase('token');
        texts.push(text.slice(sent));
        sent = text.length;
        texted();
      });
      answer = asked;
      // A busy refusal is read from `ended` below, and the next ask replaces this one.
      asked.result.catch(() => undefined);
      if (signal.aborted) asked.stop();
      // Peers busy with other jobs refuse at once, before any text: the job then waits for a slot again, first in line
      // (the peers' load from other requesters is not known here, so a slot can turn out to be taken).
      const refusedBusy = await Promise.race([
        textCame,
        asked.ended.then(
          () => false,
          (error: unknown) => error instanceof MeshJobError && error.code === 'BUSY',
        ),
      ]);
      if (!refusedBusy) {
        result = asked.result;
        const end = () => texts.end();
        asked.ended.then(end, end);
        break;
      }
      writeRecords();
      slot(BUSY_BACKOFF_MS);
      slot = null;
    }
    result = result.finally(() => {
      // The peer is done with it: its place goes to the next job waiting.
      slot?.();
      slot = null;
      texts.settle();
    });
    result.catch(() => undefined);
    // Every text is with the route (it asked for the next event) and no more will come: the records may be written.
    for await (const text of texts.read(() => writeRecords())) {
      firstAt ??= performance.now();
      yield { type: 'delta', text };
    }
    let outcome;
    try {
      outcome = await result;
    } catch (error) {
      if (
        error instanceof MeshJobError &&
        (error.code === 'NO_PEER' || error.code === 'BUSY' || error.code === 'DEADLINE')
      )
        throw OpenAIError.unavailable(error.message, 5);
      // A model the server holds no tokenizer for is fitted by its peer, whose refusal comes back here.
      if (error instanceof MeshJobError && error.code === 'CONTEXT_OVERFLOW')
        throw new OpenAIError(400, 'invalid_request_error', 'context_length_exceeded', error.message, {
          param: 'messages',
        });
      throw error;
    }
    if (!outcome) throw OpenAIError.unavailable('The job was stopped before any peer answered', 5);
    const totalMs = performance.now() - started;
    yield {
      type: 'done',
      finishReason: outcome.reason === 'length' ? 'length' : 'stop',
      model: chat.entry.id,
      usage: { promptTokens: outcome.tokensIn, completionTokens: outcome.tokenIds.length },
      timings: {
        ttftMs: firstAt === null ? null : Math.round(firstAt - started),
        totalMs: Math.round(totalMs),
        tokensPerSecond: outcome.tokensPerSecond || null,
      },
    };
  } finally {
    // Stopped early (the client left) or done: a running job is cancelled within one token on its peer.
    signal.removeEventListener('abort', stop);
    if (!texts.settled) answer?.stop();
    // Stopped early or failed: the records still go in (a cancelled or failed job's finish).
    writeRecords();
    slot?.();
    release();
  }
}
