// The account procedures at the HTTP edge (docs/SECURITY.md): cookie attributes, cross-origin
// refusal, production errors, body limits and input validation.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { type TestDatabase, databaseKinds, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

interface ErrorBody {
  error?: {
    message: string;
    data: { code: string; httpStatus: number; zodIssues: { path: string[]; message: string }[] | null };
  };
}

function post(app: FastifyInstance, procedure: string, payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: `/api/trpc/auth.${procedure}`,
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

function setCookie(response: { headers: Record<string, unknown> }): string {
  const header = response.headers['set-cookie'];
  return Array.isArray(header) ? header.join('\n') : String(header ?? '');
}

let counter = 0;
const uniqueName = () => `http-${process.pid}-${++counter}`;

describe.each(databaseKinds())('account procedures over HTTP on %s', (kind) => {
  let db: TestDatabase;
  let app: FastifyInstance;
  let proxied: FastifyInstance;

  beforeAll(async () => {
    db = await openTestDatabase(kind);
    app = await buildApp({ env: testEnv({ BODY_LIMIT_BYTES: '4096' }), database: db.database });
    proxied = await buildApp({ env: testEnv({ TRUST_PROXY: 'true' }), database: db.database });
  });
  afterAll(async () => {
    await app.close();
    await proxied.close();
    await db.cleanup();
  });

  describe('the session cookie is HttpOnly; Secure over https; SameSite=Lax; Path=/; no Domain', () => {
    it('sets those attributes at sign-up and login over plain http, without Secure', async () => {
      const username = uniqueName();
      for (const response of [
        await post(app, 'signup', { username, password: 'plain http password' }),
        await post(app, 'login', { username, password: 'plain http password' }),
      ]) {
        expect(response.statusCode).toBe(200);
        const cookie = setCookie(response);
        expect(cookie).toMatch(/^mesh_session=[\w-]{20}\.[\w-]{32}; /);
        expect(cookie).toMatch(/; HttpOnly/);
        expect(cookie).toMatch(/; SameSite=Lax/);
        expect(cookie).toMatch(/; Path=\//);
        expect(cookie).toMatch(/; Expires=/);
        expect(cookie).not.toMatch(/Domain=/i);
        expect(cookie).not.toMatch(/Secure/);
      }
    });

    it('adds Secure behind an https proxy with TRUST_PROXY, also on the cookie that logout clears', async () => {
      const username = uniqueName();
      const https = { 'x-forwarded-proto': 'https' };
      const signup = await post(proxied, 'signup', { username, password: 'proxied password' }, https);
      const login = await post(proxied, 'login', { username, password: 'proxied password' }, https);
      const token = login.cookies.find((c) => c.name === 'mesh_session')?.value ?? '';
      const logout = await post(proxied, 'logout', {}, { ...https, cookie: `mesh_session=${token}` });
      for (const response of [signup, login, logout]) {
        expect(response.statusCode).toBe(200);
        expect(setCookie(response)).toMatch(/; Secure/);
        expect(setCookie(response)).toMatch(/; HttpOnly/);
        expect(setCookie(response)).toMatch(/; SameSite=Lax/);
        expect(setCookie(response)).not.toMatch(/Domain=/i);
      }
      expect(setCookie(logout)).toMatch(/^mesh_session=; /);
    });

    it('ignores X-Forwarded-Proto when the proxy is not trusted', async () => {
      const response = await post(
        app,
        'signup',
        { username: uniqueName(), password: 'untrusted proxy' },
        { 'x-forwarded-proto': 'https' },
      );
      expect(response.statusCode).toBe(200);
      expect(setCookie(response)).not.toMatch(/Secure/);
    });
  });

  describe('mutations from another origin are refused', () => {
    it('refuses sign-up, login, logout and password change from another site, before any work', async () => {
      const username = uniqueName();
      const input = { username, password: 'cross origin password' };
      for (const headers of [{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }] as Record<
        string,
        string
      >[]) {
        for (const [procedure, payload] of [
          ['signup', input],
          ['login', input],
          ['logout', {}],
          ['changePassword', { currentPassword: 'a'.repeat(8), newPassword: 'b'.repeat(8) }],
        ] as const) {
          const response = await post(app, procedure, payload, headers);
          expect(response.statusCode, `${procedure} ${JSON.stringify(headers)}`).toBe(403);
          expect(response.json()).toEqual({
            error: 'CROSS_ORIGIN',
            message: 'Cross-origin requests may not change state',
          });
          expect(response.headers['set-cookie']).toBeUndefined();
        }
      }
      expect(await db.database.prisma.user.count({ where: { username } })).toBe(0);
      const sameOrigin = await post(app, 'signup', input, {
        origin: 'http://localhost:80',
        'sec-fetch-site': 'same-origin',
      });
      expect(sameOrigin.statusCode).toBe(200);
    });
  });

  describe('oversized bodies get 413, malformed input BAD_REQUEST with the zod path', () => {
    it('answers a body over BODY_LIMIT_BYTES with 413 at sign-up and login', async () => {
      for (const procedure of ['signup', 'login']) {
        const response = await post(app, procedure, { username: uniqueName(), password: 'x'.repeat(8000) });
        expect(response.statusCode).toBe(413);
        expect(response.json()).toMatchObject({ error: 'FST_ERR_CTP_BODY_TOO_LARGE' });
      }
    });

    it.each([
      ['signup', { username: 'ab', password: 'long enough' }, ['username'], 'Username is at least 3 characters'],
      [
        'signup',
        { username: 'a'.repeat(33), password: 'long enough' },
        ['username'],
        'Username is at most 32 characters',
      ],
      [
        'signup',
        { username: 'has space', password: 'long enough' },
        ['username'],
        'Username may contain only letters, digits, _ and -',
      ],
      [
        'signup',
        { username: 'élodie', password: 'long enough' },
        ['username'],
        'Username may contain only letters, digits, _ and -',
      ],
      ['signup', { username: 'valid-name', password: 'short' }, ['password'], 'Password is at least 8 characters'],
      [
        'signup',
        { username: 'valid-name', password: 'long enough', displayName: '' },
        ['displayName'],
        'Display name cannot be empty',
      ],
      ['login', { username: 'valid-name' }, ['password'], 'Invalid input: expected string, received undefined'],
      [
        'login',
        { username: 42, password: 'long enough' },
        ['username'],
        'Invalid input: expected string, received number',
      ],
      [
        'changePassword',
        { currentPassword: 'same password', newPassword: 'same password' },
        ['newPassword'],
        'New password must differ from the current one',
      ],
    ])('answers %s with %j by BAD_REQUEST at path %j', async (procedure, input, path, message) => {
      // changePassword needs a session before its input is looked at.
      const headers: Record<string, string> = procedure === 'changePassword' ? { cookie: await accountCookie() } : {};
      const response = await post(app, procedure, input, headers);
      expect(response.statusCode).toBe(400);
      const body = response.json<ErrorBody>();
      expect(body.error?.data.code).toBe('BAD_REQUEST');
      expect(body.error?.data.zodIssues).toEqual([{ path, message }]);
    });

    it('refuses unknown keys and malformed JSON with 400, never a 500', async () => {
      const extra = await post(app, 'signup', { username: uniqueName(), password: 'long enough', kind: 'ACCOUNT' });
      expect(extra.statusCode).toBe(400);
      expect(extra.json<ErrorBody>().error?.data.code).toBe('BAD_REQUEST');
      const malformed = await post(app, 'login', '{"username":');
      expect(malformed.statusCode).toBe(400);
      const notObject = await post(app, 'login', '"just a string"');
      expect(notObject.statusCode).toBe(400);
    });

    async function accountCookie(): Promise<string> {
      const response = await post(app, 'signup', { username: uniqueName(), password: 'same password' });
      return `mesh_session=${response.cookies.find((c) => c.name === 'mesh_session')?.value ?? ''}`;
    }
  });
});

describe('production errors of the account procedures', () => {
  it('carry no stack and no internal message, and the original is logged', async () => {
    const lines: string[] = [];
    const local = await openTestDatabase('pglite');
    const prod = await buildApp({
      env: testEnv({ NODE_ENV: 'production', LOG_LEVEL: 'error' }),
      database: local.database,
      client: 'none',
      logStream: { write: (line) => void lines.push(line) },
    });
    // A bug, not an outage (an unreachable database answers 503, tests/outage-postgres.test.ts): every query on User
    // now fails inside the database with an error that names SQL and tables.
    await local.database.prisma.$executeRawUnsafe('ALTER TABLE "User" RENAME TO "UserGone"');
    for (const procedure of ['signup', 'login']) {
      const response = await post(prod, procedure, { username: 'someone', password: 'a fine password' });
      expect(response.statusCode).toBe(500);
      const body = response.json<ErrorBody>();
      expect(body.error?.message).toBe('Internal server error');
      expect(body.error?.data.code).toBe('INTERNAL_SERVER_ERROR');
      expect(response.body).not.toMatch(/stack|prisma|pglite|\.ts\b|closed/i);
    }
    expect(lines.filter((line) => line.includes('tRPC procedure failed'))).toHaveLength(2);
    await prod.close();
    await local.cleanup();
  });
});
