// A socket lives no longer than its session. Revocations (logout, password change) end sockets at once through
// session events; this ends them when the session expires (its absolute cap, or idle with no use) or is deleted
// some other way (housekeeping), by checking the session again at its expiry and every SOCKET_SESSION_CHECK_SECONDS.
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/client.ts';
import { unavailability } from '../dependencies/dependency.ts';
import { type SessionPolicy, type ValidSession, validateSessionToken } from '../services/session.ts';
import type { MeshSocket } from './mesh.handlers.ts';

/** After a failed check (the database unreachable), the next try. */
const RETRY_MS = 10_000;

export interface SessionWatchOptions {
  db: Db;
  policy: SessionPolicy;
  checkMs: number;
  log: Pick<FastifyBaseLogger, 'warn'>;
}

/**
 * Watches the session `token` names for `socket` and disconnects the socket once it is gone; returns the function
 * that stops watching (call it on disconnect). A check is a use of the session, as an HTTP request is: a connected
 * socket keeps its session from idling out, never past its absolute expiry.
 */
export function watchSession(
  socket: MeshSocket,
  token: string,
  session: Pick<ValidSession, 'expiresAt' | 'idleExpiresAt'>,
  options: SessionWatchOptions,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let known = session;

  const wait = (delayMs: number, at: number) => {
    timer = setTimeout(() => void check(at), Math.max(0, delayMs));
    // Never what keeps the process alive at shutdown.
    timer.unref();
  };
  const schedule = (intervalMs: number) => {
    const now = Date.now();
    const at = Math.min(known.expiresAt.getTime(), known.idleExpiresAt.getTime(), now + intervalMs);
    wait(at - now, at);
  };
  const end = () => {
    stopped = true;
    socket.disconnect(true);
  };

  const check = async (at: number) => {
    // A timer can fire a moment before its time by the wall clock.
    if (Date.now() < at) return wait(at - Date.now(), at);
    // The absolute expiry is never extended: no need to ask the database.
    if (at >= known.expiresAt.getTime()) return end();
    const current = await validateSessionToken(options.db, token, options.policy).catch((error: unknown) => {
      // An outage is logged once (the dependencies plugin), not once per socket.
      if (!unavailability(error)) options.log.warn({ err: error }, 'could not check a socket’s session; trying again');
      return undefined;
    });
    if (stopped) return;
    if (current === null) return end();
    if (current === undefined) return wait(Math.min(options.checkMs, RETRY_MS), at);
    known = current;
    schedule(options.checkMs);
  };

  // Spread over the interval, so sockets that connected together (after a restart) are not all checked together.
  schedule(options.checkMs * (0.5 + Math.random() / 2));
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
