import { describe, expect, it } from 'vitest';
import { isConnectionFailure } from './database.ts';

const adapterError = (cause: object) =>
  Object.assign(new Error('driver adapter error'), { name: 'DriverAdapterError', cause });

describe('isConnectionFailure', () => {
  it('recognises a database that cannot be reached or went away mid-query', () => {
    expect(isConnectionFailure(adapterError({ kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 5432 }))).toBe(
      true,
    );
    expect(isConnectionFailure(adapterError({ kind: 'ConnectionClosed' }))).toBe(true);
    // 57P01: terminating connection due to administrator command (a stopping server).
    expect(isConnectionFailure(adapterError({ kind: 'postgres', code: '57P01' }))).toBe(true);
    expect(isConnectionFailure(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(
      isConnectionFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })),
    ).toBe(true);
  });

  it('leaves a query’s own errors alone', () => {
    expect(
      isConnectionFailure(adapterError({ kind: 'UniqueConstraintViolation', constraint: { fields: ['username'] } })),
    ).toBe(false);
    // 40P01 deadlock detected: the query, not the connection.
    expect(isConnectionFailure(adapterError({ kind: 'postgres', code: '40P01' }))).toBe(false);
    expect(isConnectionFailure(new Error('Transaction already closed'))).toBe(false);
    expect(isConnectionFailure('not an error')).toBe(false);
  });
});
