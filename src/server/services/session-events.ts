// Session revocations, for whoever holds connections by session (the Socket.IO layer disconnects the sockets
// of revoked sessions). One instance per app: created in app.ts, in the tRPC context and on `app.sessionEvents`.
// In-process only: with several nodes, each node hears the revocations made on it (a shared bus would carry
// them further).
import { EventEmitter } from 'node:events';

export interface SessionsRevoked {
  userId: string;
  /** Sessions that no longer exist (never empty). */
  sessionIds: string[];
}

interface SessionEventMap {
  revoked: [SessionsRevoked];
}

/** Listeners run synchronously inside the request that revoked the sessions: keep them short and non-throwing. */
export class SessionEvents extends EventEmitter<SessionEventMap> {
  /** Announces revoked sessions; does nothing when there are none. */
  revoked(userId: string, sessionIds: string[]): void {
    if (sessionIds.length > 0) this.emit('revoked', { userId, sessionIds });
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    sessionEvents: SessionEvents;
  }
}
