// The database as a dependency: Prisma's driver adapter wrapped so that, while the database is down, a query is refused
// at once (no connection attempt that would wait for its timeout), and a query that fails because the connection did
// fails as DependencyUnavailableError (a 503, not a 500) and has the database checked.
import type { SqlDriverAdapterFactory } from '@prisma/client/runtime/client';
import type { Dependency } from './dependency.ts';

type SqlDriverAdapter = Awaited<ReturnType<SqlDriverAdapterFactory['connect']>>;
type Transaction = Awaited<ReturnType<SqlDriverAdapter['startTransaction']>>;

/** Driver adapter error kinds (`@prisma/driver-adapter-utils`) that mean the connection, not the query, failed. */
const CONNECTION_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
/** Socket errors node-postgres passes through as they are. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/**
 * PostgreSQL SQLSTATEs of a server going away: class 08 (connection exception), 57P01 admin shutdown, 57P02 crash
 * shutdown, 57P03 cannot connect now (starting up or shutting down), 53300 too many connections.
 */
const SQLSTATE = /^(08...|57P0[123]|53300)$/;
/** node-postgres' own messages for a connection it lost or could not make in time. */
const PG_MESSAGES =
  /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|Cannot use a pool after calling end/i;

/** Whether `error`, thrown by the driver adapter, says the database could not be reached rather than that a query was wrong. */
export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const cause = (error as { cause?: { kind?: unknown; code?: unknown } }).cause;
  if (error.name === 'DriverAdapterError' && cause) {
    if (typeof cause.kind === 'string' && CONNECTION_KINDS.has(cause.kind)) return true;
    return cause.kind === 'postgres' && typeof cause.code === 'string' && SQLSTATE.test(cause.code);
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (SOCKET_CODES.has(code) || SQLSTATE.test(code))) return true;
  return PG_MESSAGES.test(error.message);
}

/**
 * `factory`'s adapter with the gate in front. Only the entry points are gated (a query on its own, the start of a
 * transaction): a transaction under way runs to its COMMIT or ROLLBACK on the connection it holds, so a connection
 * never goes back to the pool inside a transaction because the gate closed between two of its statements.
 */
export function gatedAdapter(factory: SqlDriverAdapterFactory, database: Dependency): SqlDriverAdapterFactory {
  const failed = (error: unknown): never => {
    if (!isConnectionFailure(error)) throw error;
    database.suspect();
    throw database.unavailableError(error);
  };
  const classify = <T>(use: () => Promise<T>): Promise<T> => use().catch(failed);
  const gate = async <T>(use: () => Promise<T>): Promise<T> => {
    database.assertUp();
    return classify(use);
  };
  // Inside a transaction nothing is refused (see above), but a connection lost mid-transaction is still unavailability.
  const transaction = (tx: Transaction): Transaction => ({
    provider: tx.provider,
    adapterName: tx.adapterName,
    options: tx.options,
    queryRaw: (query) => classify(() => tx.queryRaw(query)),
    executeRaw: (query) => classify(() => tx.executeRaw(query)),
    commit: () => classify(() => tx.commit()),
    rollback: () => classify(() => tx.rollback()),
  });
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    async connect(): Promise<SqlDriverAdapter> {
      const adapter = await factory.connect();
      return {
        provider: adapter.provider,
        adapterName: adapter.adapterName,
        queryRaw: (query) => gate(() => adapter.queryRaw(query)),
        executeRaw: (query) => gate(() => adapter.executeRaw(query)),
        executeScript: (script) => gate(() => adapter.executeScript(script)),
        startTransaction: (isolationLevel) =>
          gate(async () => transaction(await adapter.startTransaction(isolationLevel))),
        ...(adapter.getConnectionInfo
          ? { getConnectionInfo: () => adapter.getConnectionInfo?.() ?? { supportsRelationJoins: false } }
          : {}),
        dispose: () => adapter.dispose(),
      };
    },
  };
}
