// The API over real HTTP: a listening server and the real tRPC client.
import { TRPCClientError, createTRPCClient, httpBatchLink, httpLink } from '@trpc/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import type { AppRouter } from '../src/server/trpc/root.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

let db: TestDatabase;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  app = await buildApp({ env: testEnv({ BODY_LIMIT_BYTES: '4096' }), database: db.database });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app.close();
  await db.cleanup();
});

function client(headers: Record<string, string> = {}) {
  return createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${base}/api/trpc`, headers })] });
}

describe('tRPC over HTTP', () => {
  it('answers health through @trpc/client against a listening server', async () => {
    const report = await client().health.query();
    expect(report).toMatchObject({ status: 'ok', db: 'ok', database: 'pglite' });
    expect(report.uptimeSeconds).toBeGreaterThanOrEqual(0);
  });

  it('issues a guest session cookie that auth.me then recognises', async () => {
    const response = await fetch(`${base}/api/trpc/auth.guest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ displayName: 'Ada' }),
    });
    expect(response.status).toBe(200);
    const setCookie = response.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^mesh_session=[\w-]{20}\.[\w-]{32};/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Lax/);
    expect(setCookie).toMatch(/Path=\//);
    expect(setCookie).not.toMatch(/Domain=/);
    const cookie = setCookie.split(';')[0] ?? '';
    const me = await client({ cookie }).auth.me.query();
    expect(me).toMatchObject({ kind: 'GUEST', displayName: 'Ada', username: null });
    expect(me?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await client().auth.me.query()).toBeNull();
  });

  it('answers bad input with BAD_REQUEST and the zod path, never a 500', async () => {
    const error = await client()
      .auth.guest.mutate({ displayName: 'x'.repeat(65) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    const shape = (error as TRPCClientError<AppRouter>).data;
    expect(shape?.code).toBe('BAD_REQUEST');
    expect(shape?.httpStatus).toBe(400);
    expect(shape?.zodIssues).toEqual([{ path: ['displayName'], message: 'Display name is at most 64 characters' }]);

    const unknownKey = await client()
      .auth.guest.mutate({ displayName: 'ok', admin: true } as never)
      .catch((e: unknown) => e);
    expect((unknownKey as TRPCClientError<AppRouter>).data?.code).toBe('BAD_REQUEST');
  });

  it('answers malformed JSON with 400, not 500', async () => {
    const response = await fetch(`${base}/api/trpc/auth.guest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"displayName":',
    });
    expect(response.status).toBe(400);
  });

  it('answers an oversized body with 413', async () => {
    const response = await fetch(`${base}/api/trpc/auth.guest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ displayName: 'x'.repeat(8000) }),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: 'FST_ERR_CTP_BODY_TOO_LARGE' });
  });

  it('refuses mutations from another origin but lets same-origin and non-browser clients through', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${base}/api/trpc/auth.guest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{}',
      });
    const evil = await post({ origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(await evil.json()).toEqual({ error: 'CROSS_ORIGIN', message: 'Cross-origin requests may not change state' });
    expect((await post({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await post({ origin: base, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    expect((await post({})).status).toBe(200);
  });

  it('does not run queries sent as POST (queries have no side effects, mutations need POST)', async () => {
    const asPost = await fetch(`${base}/api/trpc/health`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(asPost.status).toBe(405);
    const asGet = await fetch(`${base}/api/trpc/auth.guest?input=${encodeURIComponent('{}')}`);
    expect(asGet.status).toBe(405);
  });

  it('sets security headers and no CORS grant for unknown origins', async () => {
    const response = await fetch(`${base}/api/health`, { headers: { origin: 'https://evil.example' } });
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'self'");
    // Cross-origin isolation, for ONNX Runtime Web's threads (tests/e2e/pwa.test.ts checks the page is isolated).
    expect(response.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(response.headers.get('cross-origin-embedder-policy')).toBe('credentialless');
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('errors in production', () => {
  it('carry no stack and no internal message, and the original is logged', async () => {
    const lines: string[] = [];
    const local = await openTestDatabase('pglite');
    const env = testEnv({ NODE_ENV: 'production', LOG_LEVEL: 'error' });
    const prod = await buildApp({
      env,
      database: local.database,
      client: 'none',
      logStream: { write: (line) => void lines.push(line) },
    });
    const url = await prod.listen({ host: '127.0.0.1', port: 0 });
    // A bug, not an outage (an unreachable database answers 503, tests/outage-postgres.test.ts): every query on User
    // now fails inside the database with an error that names SQL and tables.
    await local.database.prisma.$executeRawUnsafe('ALTER TABLE "User" RENAME TO "UserGone"');
    const caught = await createTRPCClient<AppRouter>({ links: [httpLink({ url: `${url}/api/trpc` })] })
      .auth.guest.mutate({})
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(TRPCClientError);
    const error = caught as TRPCClientError<AppRouter>;
    expect(error.message).toBe('Internal server error');
    expect(error.data?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(JSON.stringify(error.data)).not.toMatch(/stack|prisma|pglite|\.ts/i);
    expect(lines.join('\n')).toMatch(/tRPC procedure failed/);
    await prod.close();
    await local.cleanup();
  });
});
