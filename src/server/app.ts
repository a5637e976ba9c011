// buildApp() assembles the server without listening, so tests can `inject()` and index.ts can boot it.
import cookie from '@fastify/cookie';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type Database, openDatabase } from './db/client.ts';
import { type Env, parseEnv, resolveDataDir } from './env.ts';
import { clientPlugin } from './plugins/client.ts';
import { dbPlugin } from './plugins/db.ts';
import { dependenciesPlugin } from './plugins/dependencies.ts';
import { unavailability } from './dependencies/dependency.ts';
import { housekeepingPlugin } from './plugins/housekeeping.ts';
import { fairSharePlugin } from './plugins/fair-share.ts';
import { rateLimitPlugin } from './plugins/rate-limit.ts';
import { securityPlugin } from './plugins/security.ts';
import { trpcPlugin } from './plugins/trpc.ts';
import { healthRoutes } from './routes/health.ts';
import { modelRoutes } from './routes/models.ts';
import { openAIRoutes } from './routes/openai.ts';
import { type BundledModel, loadNanoModel } from './models/bundled.ts';
import { loadManifest } from './models/manifest.ts';
import type { ManifestEntry } from '../shared/schemas/models.ts';
import { modelsPlugin } from './plugins/models.ts';
import { fetchForServing, serveModelEntries } from './openai/serve-models.ts';
import { SessionEvents } from './services/session-events.ts';
import { sessionPolicy } from './services/session.ts';
import { socketPlugin } from './plugins/socket.ts';
import { findPeer } from './socket/mesh.handlers.ts';
import { buildInfo } from './version.ts';
import { RequestLog, requestLogLine } from './request-log.ts';
import { logFormat, prettyLogStream } from './log-format.ts';
import { trustFunction } from './net/proxy-trust.ts';
import { Budgets } from './services/budgets.ts';
import { createChatRuntime } from './providers/index.ts';
import { MeshGateway, gatewayCacheDir } from './openai/mesh-gateway.ts';

export interface BuildAppOptions {
  /** Validated environment; defaults to the embedded defaults (tests pass their own). */
  env?: Env;
  /** An already-open database (tests share one); otherwise one is opened from env and closed with the app. */
  database?: Database;
  /** How to serve the client; default: Vite in development, `dist/` in production, none in test. */
  client?: 'static' | 'vite' | 'none';
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
}

export async function buildApp(options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const env = options.env ?? parseEnv({});
  // One line per answered request, none for refusals (src/server/request-log.ts).
  const requestLog = new RequestLog();
  const app = Fastify({
    logger: {
      level: env.LOG_LEVEL,
      // A request line names the route, never its query string (chat.stream's prompt rides in it) or headers
      // (cookies, keys); what else could carry a secret is redacted (docs/SECURITY.md).
      serializers: { req: requestLogLine },
      redact: [
        'req.headers.cookie',
        'req.headers.authorization',
        'res.headers["set-cookie"]',
        '*.token',
        '*.password',
        '*.apiKey',
      ],
      ...(options.logStream
        ? { stream: options.logStream }
        : logFormat(env.LOG_FORMAT, process.stdout.isTTY === true) === 'pretty'
          ? { stream: await prettyLogStream() }
          : {}),
    },
    logController: requestLog,
    bodyLimit: env.BODY_LIMIT_BYTES,
    // SSE subscriptions (chat.stream) carry their input in the GET URL: let a URL hold what a POST body may
    // (percent-encoding can double it). Node's default of 16 KiB refused a 20,000-character message with 431.
    http: { maxHeaderSize: Math.max(16_384, 2 * env.BODY_LIMIT_BYTES) },
    // A slow client cannot hold a connection forever (docs/SECURITY.md).
    requestTimeout: env.REQUEST_TIMEOUT_MS,
    connectionTimeout: env.CONNECTION_TIMEOUT_MS,
    keepAliveTimeout: env.KEEP_ALIVE_TIMEOUT_MS,
    // On close: refuse new requests on kept-alive sockets with 503 and drop idle ones, so shutdown drains.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // One trust rule for request.ip and the Socket.IO handshake (src/server/net/proxy-trust.ts).
    trustProxy: trustFunction(env.TRUST_PROXY),
    routerOptions: { maxParamLength: 512 },
  });

  // Validate every piece of configuration before touching the database.
  const bundled = [await loadNanoModel()].filter((model) => model !== null);
  const manifest = [...bundled.map((model) => model.entry), ...(await loadManifest(env.MANIFEST_PATH))];
  const database =
    options.database ??
    (await openDatabase({
      url: env.DATABASE_URL,
      pgliteDir: path.join(resolveDataDir(env), 'pglite'),
      poolSize: env.DATABASE_POOL_SIZE,
    }));
  if (database.migrations.applied.length > 0)
    app.log.info({ applied: database.migrations.applied }, 'migrations applied');
  if (database.migrations.modified.length > 0) {
    app.log.warn({ modified: database.migrations.modified }, 'applied migrations changed on disk since they ran');
  }

  const stopSummary = requestLog.summarize(app.log);
  app.addHook('onClose', async () => stopSummary());
  try {
    await registerAll(app, env, database, manifest, bundled, options);
  } catch (error) {
    await app.close();
    if (options.database === undefined) await database.close();
    throw error;
  }
  return app;
}

async function registerAll(
  app: FastifyInstance,
  env: Env,
  database: Database,
  manifest: ManifestEntry[],
  bundled: BundledModel[],
  options: BuildAppOptions,
) {
  // Drain: Node closes the connections that are idle when close() starts, but a kept-alive connection whose
  // response finishes afterwards stays open until the client hangs up, holding shutdown hostage. Keep
  // closing newly idle ones until the server is closed.
  //
  // Node counts a connection as idle only after a request on it: one that never carried a request (a client's pool
  // connecting again after an aborted stream, or ahead of a request it then dropped) is left to the connection
  // timeout, CONNECTION_TIMEOUT_MS (60 s), and close() waited that long for it. Those that have received no byte
  // at all are closed too: nothing is in progress on them.
  const unused = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  });
  const used = (request: IncomingMessage) => unused.delete(request.socket);
  app.server.on('request', used);
  app.server.on('upgrade', used);
  let drainTimer: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    drainTimer = setInterval(() => {
      app.server.closeIdleConnections();
      for (const socket of unused) if (socket.bytesRead === 0) socket.destroy();
    }, 50);
    drainTimer.unref();
  });
  app.addHook('onClose', async () => clearInterval(drainTimer));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    // A dependency that is down (the database, Redis): retryable, and already logged once by the dependencies plugin.
    const unavailable = unavailability(error);
    if (unavailable) {
      return reply
        .code(503)
        .header('retry-after', String(unavailable.retryAfterSeconds))
        .send({ error: 'UNAVAILABLE', message: unavailable.message });
    }
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.code(status).send({ error: 'INTERNAL', message: 'Internal server error' });
    }
    // Plugins throw their own shapes (rate-limit's has `error`); keep a stable machine-readable code.
    const code = error.code ?? (error as { error?: string }).error ?? 'BAD_REQUEST';
    return reply.code(status).send({ error: code, message: error.message });
  });

  // The commit is public only when the operator asks for it (HEALTH_SHOW_COMMIT).
  const build = { ...buildInfo(env.GIT_COMMIT), ...(env.HEALTH_SHOW_COMMIT ? {} : { commit: null }) };
  await app.register(dbPlugin, { database, owned: options.database === undefined });
  await app.register(dependenciesPlugin);
  await app.register(modelsPlugin, { env, manifest, bundled });
  // Revocations (logout, password change) reach the socket layer through this.
  const sessionEvents = new SessionEvents();
  app.decorate('sessionEvents', sessionEvents);
  const services = {
    env,
    database,
    sessionPolicy: sessionPolicy(env.SESSION_IDLE_DAYS, env.SESSION_MAX_DAYS),
    build,
    models: app.models,
    sessionEvents,
    // Asked at request time, when the socket plugin (registered below) has decorated `mesh`.
    peers: (room: string, peerId: string) => findPeer(app.mesh, room, peerId, app.dependencies.redis),
    budgets: new Budgets(env),
    chat: createChatRuntime(env),
    dependencies: app.dependencies,
  };
  await app.register(securityPlugin, { env });
  await app.register(rateLimitPlugin, { env });
  await app.register(fairSharePlugin, { env });
  await app.register(cookie);
  await app.register(healthRoutes, { build, env });
  await app.register(modelRoutes, { env, sessionPolicy: services.sessionPolicy });
  await app.register(housekeepingPlugin, { env });
  await app.register(trpcPlugin, { services });
  const gateway = new MeshGateway({
    origin: () => ownOrigin(app),
    db: database.prisma,
    sessionPolicy: services.sessionPolicy,
    cacheDir: gatewayCacheDir(resolveDataDir(env)),
    log: app.log,
    streamsPerUser: env.MESH_API_STREAMS_PER_USER,
    waitMs: env.MESH_API_WAIT_MS,
  });
  app.decorate('meshGateway', gateway);
  app.addHook('preClose', async () => gateway.close());
  await app.register(openAIRoutes, { prefix: '/v1', services, gateway, mesh: () => app.mesh });
  // Built-in ids, or models an operator added for everyone (openai/serve-models.ts): checked at start.
  const served = await serveModelEntries(database.prisma, manifest, env.SERVE_MODELS);
  // The server's own models join the global room once it listens (they sign in through its own API), each fetched
  // first if the server does not hold it yet.
  app.addHook('onListen', async () => {
    if (served.length === 0) return;
    const entries = new Map(served.map((entry) => [entry.id, entry]));
    const prepare = async (id: string) => {
      const entry = entries.get(id);
      if (entry) await fetchForServing(app.models.downloader, entry);
    };
    void gateway.serve(env.SERVE_MODELS, prepare).then(
      () => app.log.info({ models: env.SERVE_MODELS }, 'serving models in the global room'),
      (error: unknown) => app.log.error({ err: error }, 'could not serve SERVE_MODELS'),
    );
  });
  await app.register(socketPlugin, {
    env,
    database,
    sessionPolicy: services.sessionPolicy,
    // Disconnects go through the Socket.IO adapter, so they reach the sockets on every node.
    onSessionsRevoked: (listener) => sessionEvents.on('revoked', listener),
  });
  const clientMode =
    options.client ?? (env.NODE_ENV === 'development' ? 'vite' : env.NODE_ENV === 'production' ? 'static' : 'none');
  await app.register(clientPlugin, { mode: clientMode, distDir: env.CLIENT_DIST_DIR });
}

/** Where this server listens, as a loopback origin its own members can reach (null before it listens). */
function ownOrigin(app: FastifyInstance): string | null {
  const address = app.server.address();
  if (!address || typeof address === 'string') return null;
  const host =
    address.address === '0.0.0.0'
      ? '127.0.0.1'
      : address.address === '::'
        ? '[::1]'
        : address.family === 'IPv6'
          ? `[${address.address}]`
          : address.address;
  return `http://${host}:${address.port}`;
}
