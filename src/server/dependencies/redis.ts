// Redis as a dependency (REDIS_URL): down as soon as the client loses its connection, up again once it answers and the
// Socket.IO adapter's subscriptions are back (before that this node would miss what the others ask of it).
import type { Namespace } from 'socket.io';
import { Dependency } from './dependency.ts';

/** What is used of node-redis' client (its full type depends on the RESP version and modules chosen). */
interface RedisClient {
  readonly isReady: boolean;
  ping(): Promise<unknown>;
  pubSubNumSub(channels: string[]): Promise<Record<string, number>>;
  on(event: 'error' | 'end' | 'ready', listener: (error?: unknown) => void): unknown;
  duplicate(): RedisClient;
}

/** Work across nodes (fetchSockets, a recovered session) waits at most this for Redis; the adapter's own request timeout. */
export const ACROSS_NODES_TIMEOUT_MS = 5000;

/**
 * Watches `client` (the adapter's publishing connection; its subscriber and stream reader are duplicates on the same
 * server). `channels` names the subscriptions that must be back before Redis counts as up.
 */
export function redisDependency(client: RedisClient, channels: () => string[]): Dependency {
  const redis = new Dependency('redis', {
    probe: async () => {
      // A command sent while disconnected would wait in the client's offline queue: ask only a connected client.
      if (!client.isReady) throw new Error('not connected');
      await client.ping();
      const wanted = channels();
      if (wanted.length === 0) return;
      const subscribers = await client.pubSubNumSub(wanted);
      if (!wanted.every((channel) => (subscribers[channel] ?? 0) > 0))
        throw new Error('connected, but the Socket.IO subscriptions are not back yet');
    },
  });
  const watch = (connection: RedisClient) => {
    connection.on('error', (error: unknown) => redis.lost(error));
    connection.on('ready', () => void redis.check());
  };
  watch(client);
  client.on('end', () => redis.lost(new Error('connection closed')));
  // The adapter's subscriber and stream reader are duplicates of this client: whichever connection notices first that
  // Redis is gone says so (an idle connection can be the last to hear).
  const duplicate = client.duplicate.bind(client);
  client.duplicate = () => {
    const copy = duplicate();
    watch(copy);
    return copy;
  };
  // node-redis rejects the commands in flight when the connection drops; the adapter sends some without waiting for
  // them (PUBLISH of requests, SET of a disconnected socket's session), and an unhandled rejection would end the
  // process. They are marked handled here; whoever awaits them still gets the rejection.
  const methods = client as unknown as Record<'publish' | 'set', (...args: unknown[]) => Promise<unknown>>;
  for (const method of ['publish', 'set'] as const) {
    const original = methods[method].bind(client);
    methods[method] = (...args: unknown[]) => {
      const sent = original(...args);
      sent.catch(() => {});
      return sent;
    };
  }
  return redis;
}

/**
 * A recovered connection's session is read from Redis: while Redis is down that read would wait in the offline queue
 * and hold the reconnecting socket with it. Refused at once instead, the socket connects afresh (Socket.IO's fallback
 * when a session cannot be restored), as after a server restart.
 */
export function restoreSessionsOnlyWhenUp(adapter: Namespace['adapter'], redis: Dependency): void {
  const restore = adapter.restoreSession.bind(adapter);
  adapter.restoreSession = (pid, offset) => redis.guard(() => restore(pid, offset), ACROSS_NODES_TIMEOUT_MS);
}
