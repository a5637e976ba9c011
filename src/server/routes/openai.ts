// The OpenAI-compatible API (README, "OpenAI-compatible API"): GET /v1/models and POST /v1/chat/completions, in
// OpenAI's wire format, for any tool that speaks to OpenAI. Callers are accounts, by API key (Authorization: Bearer
// mnl_...); cookies are ignored here, so no page can spend a visitor's budget through this API (docs/SECURITY.md).
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { OpenAIChatRequestSchema } from '../../shared/schemas/openai.ts';
import { ModelIdSchema } from '../../shared/schemas/models.ts';
import { OpenAIError, ProviderError, fromProviderError } from '../openai/errors.ts';
import { answerInOpenAIShape, invalidBody } from '../openai/error-replies.ts';
import { type ModelTarget, listModels, routeModel } from '../openai/routing.ts';
import { ChunkWriter, completion, completionMeta, openAIUsage } from '../openai/wire.ts';
import { authenticateApiKey, trustVerifiedApiKeys } from '../services/api-keys.ts';
import type { BudgetName } from '../services/budgets.ts';
import { type ChatCaller, type ChatRequest, runChat } from '../services/chat.ts';
import type { ChatStreamEvent } from '../../shared/schemas/chat.ts';
import type { AppServices } from '../trpc/context.ts';
import { meshRoomOf, meshSampling, runMeshChat } from '../openai/mesh-chat.ts';
import { serviceRecorder } from '../openai/mesh-records.ts';
import type { MeshGateway } from '../openai/mesh-gateway.ts';
import { roomModels, roomsOf } from '../openai/room-models.ts';
import { serverTokenizers } from '../openai/pipeline-tokenizer.ts';
import { addedModelFor, addedModelIds } from '../openai/added-models.ts';
import type { MeshNamespace } from '../socket/mesh.handlers.ts';
import { Phases } from '../openai/phases.ts';

import { GLOBAL_ROOM } from '../services/room.ts';

/** Rooms of an account GET /v1/models looks into (the global room and its most recently joined ones). */
const LISTED_ROOMS = 64;

export interface OpenAIRoutesOptions {
  /** The app's services, the same the tRPC procedures get (src/server/app.ts). */
  services: Pick<AppServices, 'env' | 'database' | 'budgets' | 'chat' | 'peers'>;
  /** The server's members of its rooms, for catalogue models (src/server/openai/mesh-gateway.ts). */
  gateway: MeshGateway;
  /** The signaling layer's rooms (presence: who shares what), asked at request time. */
  mesh: () => MeshNamespace;
}

export const openAIRoutes: FastifyPluginAsync<OpenAIRoutesOptions> = async (app, { services, gateway, mesh }) => {
  const { env, database, budgets, chat: runtime } = services;
  const { providers } = runtime;
  // The embedded database is this process's alone, so every revocation passes through it and a verified key can be
  // trusted for a minute without a query (src/server/services/api-keys.ts); a shared PostgreSQL is asked every time.
  if (database.kind === 'pglite') trustVerifiedApiKeys(database.prisma);
  const started = Math.floor(Date.now() / 1000);
  // Pipeline jobs' tokenizers, from the server's model cache (openai/pipeline-tokenizer.ts).
  const tokenizers = serverTokenizers(app.models.file);

  async function spend(request: FastifyRequest, name: BudgetName, userId?: string): Promise<void> {
    const result = await budgets.spend(name, { ip: request.ip, userId });
    if (!result.ok) throw OpenAIError.rateLimited(result.message, result.retryAfterMs / 1000);
  }

  /** The key's account, after the per-address call budget (so guessing keys costs budget, not database time). */
  async function caller(request: FastifyRequest, phases?: Phases): Promise<ChatCaller> {
    await spend(request, 'call');
    phases?.mark('budget');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1]) {
      throw OpenAIError.invalidKey(
        'No API key: send one as `Authorization: Bearer mnl_...` (an account makes keys on its Account screen)',
      );
    }
    const holder = await authenticateApiKey(database.prisma, match[1]);
    phases?.mark('key');
    // The key is never echoed: this message reaches logs and screens.
    if (!holder)
      throw OpenAIError.invalidKey(
        'Incorrect API key: it is unknown or revoked (an account makes keys on its Account screen)',
      );
    return { userId: holder.userId, account: true };
  }

  // Everything in this scope answers in OpenAI's shape, the plugins' early refusals included.
  answerInOpenAIShape(app);

  const meshRoom = (request: FastifyRequest, userId: string) =>
    meshRoomOf(database, request.headers['x-mesh-room'], userId);

  /**
   * The request's target and, for a mesh model, its room: a built-in catalogue id or a provider's model first
   * (routing.ts), else a model added by repo id that this account may ask in that room (openai/added-models.ts);
   * anything else is the 404 routing.ts gives.
   */
  async function routeRequest(
    request: FastifyRequest,
    name: string,
    userId: string,
  ): Promise<{ target: ModelTarget; room: string | null }> {
    let routed: ModelTarget;
    try {
      routed = routeModel(name, { providers, manifest: app.models.manifest });
    } catch (error) {
      // A provider's name (with its `/`) is never an added model's id.
      if (!(error instanceof OpenAIError) || error.status !== 404 || !ModelIdSchema.safeParse(name).success)
        throw error;
      const room = await meshRoom(request, userId);
      const entry = await addedModelFor(database.prisma, mesh(), { id: name, userId, room });
      if (!entry) throw error;
      return { target: { kind: 'mesh', entry }, room };
    }
    return { target: routed, room: routed.kind === 'mesh' ? await meshRoom(request, userId) : null };
  }

  app.get('/models', async (request) => {
    const who = await caller(request);
    const rooms = await roomsOf(database.prisma, who.userId, LISTED_ROOMS);
    const { shared, staged } = await roomModels(mesh(), rooms);
    const own = new Set(gateway.ownModels());
    const builtin = app.models.manifest.filter((entry) => shared.has(entry.id) || own.has(entry.id)).map((e) => e.id);
    // Catalogue models nobody shares whole in those rooms, whose layers a chain of stage peers holds: they answer as
    // pipeline jobs (openai/pipeline-chat.ts), in the rooms where a chain does.
    const pipelines = app.models.manifest
      .filter((entry) => staged.has(entry.id) && !shared.has(entry.id) && !own.has(entry.id))
      .map((entry) => entry.id);
    // Models added by repo id, where a peer shares them in one of the key's rooms: there they answer any member
    // (openai/added-models.ts). Ids no catalogue knows, a peer's own claim, are not listed.
    const listedIds = new Set(builtin);
    const added = await addedModelIds(
      database.prisma,
      [...shared.keys()].filter((id) => !listedIds.has(id)),
    );
    return {
      object: 'list',
      data: [
        ...[...builtin, ...added].map((id) => ({
          id,
          object: 'model' as const,
          created: started,
          // The server's own (SERVE_MODELS) or the mesh's; `rooms` says where to send X-Mesh-Room.
          owned_by: own.has(id) ? 'server' : 'mesh',
          rooms: shared.get(id) ?? [GLOBAL_ROOM],
        })),
        ...pipelines.map((id) => ({
          id,
          object: 'model' as const,
          created: started,
          owned_by: 'mesh-pipeline',
          rooms: staged.get(id) ?? [GLOBAL_ROOM],
        })),
        ...listModels({ providers }, started),
      ],
    };
  });

  app.post('/chat/completions', async (request, reply) => {
    // Where a mesh answer's time to first token goes, sent back as Server-Timing (bench/openai-api.ts reads it).
    const phases = new Phases(reply.elapsedTime);
    const who = await caller(request, phases);
    const parsed = OpenAIChatRequestSchema.safeParse(request.body);
    if (!parsed.success) throw invalidBody(parsed.error.issues);
    const body = parsed.data;
    const { target, room } = await routeRequest(request, body.model, who.userId);
    const sampling = {
      temperature: body.temperature,
      topP: body.top_p,
      maxTokens: body.max_completion_tokens ?? body.max_tokens,
      seed: body.seed,
      stop: body.stop,
    };
    const jobSampling = target.kind === 'mesh' ? meshSampling(sampling) : null;
    // The account's cap on open mesh streams refuses before any budget is spent; the stream's end releases it.
    phases.mark('route');
    const admitted = target.kind === 'mesh' ? gateway.admit(who.userId) : null;
    try {
      await spend(request, 'chat', who.userId);
    } catch (error) {
      admitted?.();
      throw error;
    }
    phases.mark('chat-budget');
    // The client hanging up (or the response ending) aborts the provider's request, or cancels the mesh job.
    const ended = new AbortController();
    reply.raw.once('close', () => ended.abort(new Error('The client went away or the response ended')));
    let events: AsyncGenerator<ChatStreamEvent>;
    switch (target.kind) {
      case 'provider': {
        const chat: ChatRequest = {
          provider: target.provider.id,
          model: target.model,
          messages: body.messages,
          sampling,
        };
        events = runChat({ env, chat: runtime, db: database.prisma, log: request.log }, who, chat, ended.signal);
        break;
      }
      case 'mesh': {
        // The address now: the records are written after the answer, when the connection may have closed.
        const ip = request.ip;
        const spendRecord = async () => {
          const result = await budgets.spend('jobRecord', { ip, userId: who.userId });
          if (!result.ok) throw OpenAIError.rateLimited(result.message, result.retryAfterMs / 1000);
        };
        events = runMeshChat(
          gateway,
          serviceRecorder(database.prisma, services.peers, who.userId, spendRecord),
          {
            entry: target.entry,
            room: room ?? GLOBAL_ROOM,
            userId: who.userId,
            messages: body.messages,
            sampling: jobSampling ?? meshSampling(sampling),
            admitted: admitted ?? (() => {}),
            phase: (name) => phases.mark(name),
            pipeline: { tokenizer: tokenizers(target.entry) },
          },
          ended.signal,
        );
        break;
      }
      default: {
        const _exhaustive: never = target;
        throw _exhaustive;
      }
    }
    // Refusals and failures before the first text get their own HTTP status; after it, an error event.
    let first: IteratorResult<ChatStreamEvent>;
    try {
      first = await events.next();
    } catch (error) {
      if (error instanceof ProviderError) throw fromProviderError(error);
      if (ended.signal.aborted) return reply.code(499).send();
      throw error;
    }
    const meta = completionMeta(body.model);
    const promptChars = body.messages.reduce((sum, message) => sum + message.content.length, 0);

    if (!body.stream) {
      let text = '';
      try {
        for (let next = first; !next.done; next = await events.next()) {
          const event = next.value;
          if (event.type === 'delta') text += event.text;
          else return completion(meta, text, event.finishReason, openAIUsage(event.usage, promptChars, text.length));
        }
      } catch (error) {
        if (error instanceof ProviderError) throw fromProviderError(error);
        if (ended.signal.aborted) return reply.code(499).send();
        throw error;
      } finally {
        // The chat waits after its done event: ending it releases its slot and charges its tokens.
        await events.return(undefined);
      }
      throw new Error('The chat ended without its done event');
    }

    if (target.kind === 'mesh') void reply.header('server-timing', phases.header());
    const writer = new ChunkWriter(meta, body.stream_options?.include_usage === true);
    async function* sse(): AsyncGenerator<string> {
      // The role's chunk goes out in one write with the first text's: as two, the second waited a turn or more of a
      // busy event loop (bench/README.md, issue 14).
      let role = writer.role();
      let text = '';
      try {
        for (let next = first; !next.done; next = await events.next()) {
          const event = next.value;
          if (event.type === 'delta') {
            text += event.text;
            yield role + writer.delta(event.text);
            role = '';
          } else {
            yield role + writer.end(event.finishReason, openAIUsage(event.usage, promptChars, text.length));
            return;
          }
        }
        if (role) yield role;
      } catch (error) {
        if (ended.signal.aborted) return;
        if (error instanceof ProviderError) yield role + writer.error(fromProviderError(error).body());
        else if (error instanceof OpenAIError) yield role + writer.error(error.body());
        else {
          request.log.error({ err: error }, 'chat completion stream failed');
          yield role + writer.error(new OpenAIError(500, 'api_error', null, 'Internal server error').body());
        }
      } finally {
        // Done, or stopped early (the client left): end the chat, which releases its slot, stops the provider and
        // charges what it spent.
        await events.return(undefined);
      }
    }
    return (
      reply
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache')
        // Proxies such as nginx would otherwise hold the tokens back in a buffer.
        .header('x-accel-buffering', 'no')
        .send(Readable.from(sse(), { objectMode: false }))
    );
  });
};
