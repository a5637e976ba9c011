// Socket.IO on the same HTTP server and origin as the API: the `/mesh` namespace for presence and signaling.
// The handshake needs a session cookie (account or guest) and, from browsers, this server's Origin.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Server } from 'socket.io';
import { type ClientToServerEvents, type InterServerEvents, MESH_NAMESPACE, SIGNAL_MAX_BYTES, type ServerToClientEvents, type SocketData } from '../../shared/socket-contract.ts';
import type { Database } from '../db/client.ts';
import type { Env } from '../env.ts';
import { type SessionPolicy, validateSessionToken } from '../services/session.ts';
import { SESSION_COOKIE } from '../trpc/context.ts';
import { type MeshNamespace, registerMesh, sessionKey } from '../socket/mesh.handlers.ts';

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

/** Browsers send Origin on WebSocket and polling requests: it must be this server (or PUBLIC_ORIGIN). */
function originAllowed(req: IncomingMessage, env: Env): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser (the headless peer): the session still decides
  if (env.PUBLIC_ORIGIN && origin === env.PUBLIC_ORIGIN) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export const socketPlugin = fp<SocketPluginOptions>(
  async (app: FastifyInstance, options) => {
    const { env } = options;
    const io = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(app.server, {
      serveClient: false,
      // Twice the signal cap: a larger packet closes the connection; one between the two gets a TOO_LARGE ack.
      maxHttpBufferSize: 2 * SIGNAL_MAX_BYTES,
      connectionStateRecovery: { maxDisconnectionDuration: 2 * 60_000, skipMiddlewares: false },
      allowRequest: (req, callback) => callback(originAllowed(req, env) ? null : 'Cross-origin connections are refused', originAllowed(req, env)),
    });
    const mesh = io.of(MESH_NAMESPACE);

    mesh.use(async (socket, next) => {
      const token = app.parseCookie(socket.request.headers.cookie ?? '')[SESSION_COOKIE];
      const session = token ? await validateSessionToken(options.database.prisma, token, options.sessionPolicy).catch(() => null) : null;
      if (!session) {
        next(Object.assign(new Error('Sign in or continue as a guest first: no valid session'), { data: { code: 'UNAUTHORIZED' } }));
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
      next();
    });
    registerMesh(mesh, { db: options.database.prisma, eventsPerSecond: env.SOCKET_EVENTS_PER_SECOND, log: app.log });

    options.onSessionsRevoked?.(({ sessionIds }) => {
      if (sessionIds.length) mesh.in(sessionIds.map(sessionKey)).disconnectSockets(true);
    });

    app.decorate('io', io);
    app.decorate('mesh', mesh);
    app.addHook('preClose', async () => {
      // io.close() would also close Fastify's HTTP server: end the sockets and the engine only.
      mesh.disconnectSockets(true);
      io.engine.close();
    });
  },
  { name: 'socket', dependencies: ['@fastify/cookie'] },
);
