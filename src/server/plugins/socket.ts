// Socket.IO on the same HTTP server and origin as the API: the `/mesh` namespace for presence and signaling.
// The handshake needs a Host this server serves, from browsers this server's Origin, a session cookie (account or
// guest), and room under the per-address handshake budget and the socket caps (docs/SECURITY.md).
// With REDIS_URL, the Redis streams adapter carries rooms, broadcasts and recovered sessions between nodes.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Server } from 'socket.io';
import {
  type ClientToServerEvents,
  type HandshakeErrorCode,
  type InterServerEvents,
  MESH_NAMESPACE,
  SIGNAL_MAX_BYTES,
  type ServerToClientEvents,
  type SocketData,
} from '../../shared/socket-contract.ts';
import type { Database } from '../db/client.ts';
import { unavailability } from '../dependencies/dependency.ts';
import { redisDependency, restoreSessionsOnlyWhenUp } from '../dependencies/redis.ts';
import { ConfigError, type Env } from '../env.ts';
import { type SessionPolicy, type ValidSession, validateSessionToken } from '../services/session.ts';
import { sessionCookieName } from '../trpc/context.ts';
import { HandshakeGuard } from '../socket/handshake-guard.ts';
import { type MeshNamespace, type MeshSocket, registerMesh, sessionKey } from '../socket/mesh.handlers.ts';
import { OutageBacklog } from '../socket/outage-backlog.ts';
import { boundedRecoveryAdapter } from '../socket/recovery-adapter.ts';
import { watchSession } from '../socket/session-expiry.ts';
import { claimSocket } from '../socket/socket-caps.ts';

export interface SocketPluginOptions {
  env: Env;
  database: Database;
  sessionPolicy: SessionPolicy;
  /** Registers a listener for revoked sessions (logout, password change): their sockets are disconnected. */
  onSessionsRevoked?: (listener: (event: { userId: string; sessionIds: string[] }) => void) => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    io: Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
    mesh: MeshNamespace;
  }
}

/** How long a dropped connection can come back as itself, with its rooms and the events it missed. */
const RECOVERY_MS = 2 * 60_000;

const refusal = (message: string, code: HandshakeErrorCode, retryInMs?: number) =>
  Object.assign(new Error(message), { data: { code, ...(retryInMs === undefined ? {} : { retryInMs }) } });

/** Connects before Socket.IO starts, so an unreachable Redis stops start-up with one line naming REDIS_URL. */
async function connectRedis(url: string) {
  // Loaded only with REDIS_URL: the embedded default keeps the client's modules out of its memory (issue 16).
  const { createClient } = await import('redis');
  let connected = false;
  const client = createClient({
    url,
    // The first connection fails start-up; a lost one is retried at least twice a second (the adapter resumes its
    // stream afterwards), so this node is back within about half a second of Redis. The dependency logs the outage once.
    socket: { reconnectStrategy: (retries) => (connected ? Math.min(50 * 2 ** retries, 500) : false) },
  });
  // Errors are reported by the dependency (src/server/dependencies/redis.ts) once connected; the first, by connect().
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    client.destroy();
    throw new ConfigError(
      `Cannot connect to Redis at REDIS_URL (${new URL(url).host}): ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  connected = true;
  return client;
}

/**
 * Resolves once every namespace's adapter is subscribed to its Redis channels: before that this node misses what
 * the others ask, and closing it (a failed listen) rejects the adapter's pending SUBSCRIBE, which nothing handles.
 */
async function adaptersSubscribed(redis: Awaited<ReturnType<typeof connectRedis>>, channels: string[]) {
  for (let waitedMs = 0; waitedMs < 5000; waitedMs += 20) {
    const subscribers = await redis.pubSubNumSub(channels);
    if (channels.every((channel) => (subscribers[channel] ?? 0) > 0)) return;
    await sleep(20);
  }
  throw new ConfigError('Redis at REDIS_URL accepted the connection but not the Socket.IO subscriptions within 5 s');
}

export const socketPlugin = fp<SocketPluginOptions>(
  async (app: FastifyInstance, options) => {
    const { env } = options;
    const redis = env.REDIS_URL === undefined ? null : await connectRedis(env.REDIS_URL);
    const { createAdapter } = redis ? await import('@socket.io/redis-streams-adapter') : { createAdapter: null };
    const channelPrefix = `${env.REDIS_KEY_PREFIX}:socket.io`;
    const guard = new HandshakeGuard(env);
    const io = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(app.server, {
      serveClient: false,
      // One node keeps the events a dropped connection missed in memory, bounded (src/server/socket/recovery-adapter.ts);
      // with Redis they are in its stream.
      adapter:
        redis && createAdapter
          ? createAdapter(redis, {
              streamName: channelPrefix,
              channelPrefix,
              sessionKeyPrefix: `${env.REDIS_KEY_PREFIX}:session:`,
            })
          : boundedRecoveryAdapter({
              maxBytes: env.SOCKET_RECOVERY_BUFFER_MB * 1024 * 1024,
              maxDisconnectionMs: RECOVERY_MS,
            }),
      // Twice the signal cap: a larger packet closes the connection; one between the two gets a TOO_LARGE ack.
      maxHttpBufferSize: 2 * SIGNAL_MAX_BYTES,
      connectionStateRecovery: { maxDisconnectionDuration: RECOVERY_MS, skipMiddlewares: false },
      allowRequest: guard.allowRequest,
      // A connection that joins no namespace is closed after this (default 45 s): with the handshake budget, it bounds
      // the connections one address can hold without a session.
      connectTimeout: 10_000,
    });
    // Nothing is served on the main namespace; a socket there would hold a connection with no session and no cap.
    io.use((_socket, next) => next(new Error(`Connect to the ${MESH_NAMESPACE} namespace`)));
    const mesh = io.of(MESH_NAMESPACE);
    // Each adapter's private channel (redis-streams-adapter 0.3): `<channelPrefix>#<namespace>#<adapter uid>#`.
    const redisChannels = () =>
      [...io._nsps.values()].map(
        (nsp) => `${channelPrefix}#${nsp.name}#${(nsp.adapter as unknown as { uid: string }).uid}#`,
      );
    const relay = redis ? redisDependency(redis, redisChannels) : null;
    if (relay) {
      app.dependencies.add(relay);
      for (const nsp of io._nsps.values()) restoreSessionsOnlyWhenUp(nsp.adapter, relay);
    }
    if (redis) {
      // After in-flight requests, whose revocations still reach other nodes; close() sends what is queued first.
      app.addHook('onClose', async () => {
        relay?.close();
        await Promise.allSettled([...io._nsps.values()].map((nsp) => nsp.adapter.close()));
        // While Redis is down, close() would wait for it (queued commands are sent first): give up on them.
        if (redis.isReady) await redis.close();
        else redis.destroy();
      });
      await adaptersSubscribed(redis, redisChannels());
    }

    // Session tokens stay on this node: socket.data travels to other nodes and into Redis (recovery), a token never.
    const tokens = new WeakMap<MeshSocket, { token: string; session: ValidSession }>();
    /** Namespace connects per connection: one comes with each handshake, further ones spend the handshake budget. */
    const connects = new WeakMap<object, number>();
    mesh.use(async (socket, next) => {
      const address = guard.address(socket.request);
      const attempt = (connects.get(socket.conn) ?? 0) + 1;
      connects.set(socket.conn, attempt);
      const spent = attempt > 1 ? await guard.spend(address) : null;
      if (spent) {
        next(refusal(spent, 'RATE_LIMITED'));
        return;
      }
      const token = app.parseCookie(socket.request.headers.cookie ?? '')[sessionCookieName(env)];
      // Other nodes' fetchSockets() get this socket's handshake through Redis: its headers, but not the cookie.
      const { cookie: _cookie, ...headers } = socket.handshake.headers;
      socket.handshake.headers = headers;
      const checked = token
        ? await validateSessionToken(options.database.prisma, token, options.sessionPolicy).then(
            (valid) => ({ valid, unavailable: null }),
            (error: unknown) => ({ valid: null, unavailable: unavailability(error) }),
          )
        : { valid: null, unavailable: null };
      // A session that cannot be checked now is not a missing one: the client is told to try again, not to sign in.
      if (checked.unavailable) {
        next(refusal(checked.unavailable.message, 'UNAVAILABLE', checked.unavailable.retryAfterSeconds * 1000));
        return;
      }
      const session = checked.valid;
      if (!token || !session) {
        next(refusal('Sign in or continue as a guest first: no valid session', 'UNAUTHORIZED'));
        return;
      }
      // A recovered socket keeps its peer id (and rooms); a new one gets a fresh id per connection (per tab).
      socket.data.peerId ??= randomUUID();
      socket.data.capabilities ??= {};
      Object.assign(socket.data, {
        userId: session.userId,
        sessionId: session.id,
        displayName: session.user.displayName,
        kind: session.user.kind,
      });
      const over = await claimSocket(mesh, socket, {
        address,
        caps: { perSession: env.SOCKETS_PER_SESSION, perUser: env.SOCKETS_PER_USER, perAddress: env.SOCKETS_PER_IP },
        log: app.log,
        redis: relay,
      });
      if (over) {
        next(refusal(over, 'TOO_MANY_SOCKETS'));
        return;
      }
      tokens.set(socket, { token, session });
      next();
    });
    mesh.on('connection', (socket) => {
      const auth = tokens.get(socket);
      tokens.delete(socket);
      if (!auth) return;
      const stop = watchSession(socket, auth.token, auth.session, {
        db: options.database.prisma,
        policy: options.sessionPolicy,
        checkMs: env.SOCKET_SESSION_CHECK_SECONDS * 1000,
        log: app.log,
      });
      socket.once('disconnect', stop);
    });
    const backlog = relay ? new OutageBacklog(mesh, relay, app.log) : null;
    if (backlog) app.addHook('onClose', async () => backlog.close());
    registerMesh(mesh, {
      db: options.database.prisma,
      database: options.database.availability,
      redis: relay,
      backlog,
      eventsPerSecond: env.SOCKET_EVENTS_PER_SECOND,
      socketsPerUserPerRoom: env.SOCKETS_PER_USER_PER_ROOM,
      log: app.log,
    });

    options.onSessionsRevoked?.(({ sessionIds }) => {
      if (sessionIds.length === 0) return;
      const keys = sessionIds.map(sessionKey);
      // This node's sockets at once: through the Redis adapter, the disconnect waits for Redis. While it is down, the
      // other nodes' are ended once it is back (the backlog).
      mesh.local.in(keys).disconnectSockets(true);
      if (backlog?.holding) backlog.revoked(keys);
      else mesh.in(keys).disconnectSockets(true);
    });

    app.decorate('io', io);
    app.decorate('mesh', mesh);
    app.addHook('preClose', async () => {
      // io.close() would also close Fastify's HTTP server: close this node's connections only (through the Redis
      // adapter, disconnectSockets would end every node's). Closed at the transport, not disconnected by the server,
      // so clients reconnect by themselves: to this server once it is back, or to another node at once.
      io.engine.close();
    });
  },
  { name: 'socket', dependencies: ['@fastify/cookie', 'dependencies'] },
);
