// Accounts and sessions through the HTTP API (RELIABILITY 1, 3 to 7): sign-up, login, logout, password change.
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { PASSWORD_HASH_PREFIX, verifyPassword } from '../src/server/services/password.ts';
import type { SessionsRevoked } from '../src/server/services/session-events.ts';
import { type TestDatabase, databaseKinds, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

interface TrpcBody {
  result?: { data: unknown };
  error?: { message: string; data: { code: string; httpStatus: number } };
}

interface Answer {
  status: number;
  body: TrpcBody;
  /** The session token a Set-Cookie gave, '' when it cleared the cookie, undefined when there was none. */
  token: string | undefined;
  headers: Record<string, unknown>;
}

async function call(app: FastifyInstance, procedure: string, input: unknown, token?: string): Promise<Answer> {
  const response = await app.inject({
    method: 'POST',
    url: `/api/trpc/auth.${procedure}`,
    headers: { 'content-type': 'application/json', ...(token ? { cookie: `mesh_session=${token}` } : {}) },
    payload: JSON.stringify(input ?? {}),
  });
  const cookie = response.cookies.find((c) => c.name === 'mesh_session');
  return { status: response.statusCode, body: response.json<TrpcBody>(), token: cookie?.value, headers: response.headers };
}

async function me(app: FastifyInstance, token: string): Promise<unknown> {
  const response = await app.inject({ method: 'GET', url: '/api/trpc/auth.me', cookies: { mesh_session: token } });
  return response.json<TrpcBody>().result?.data;
}

const sessionId = (token: string | undefined) => token?.split('.')[0] ?? '';

/** Changes one character of a token: the id part or the secret part. */
function changeOne(token: string, position: number): string {
  return token.slice(0, position) + (token[position] === 'A' ? 'B' : 'A') + token.slice(position + 1);
}

let counter = 0;
const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

afterEach(() => vi.useRealTimers());

describe.each(databaseKinds())('accounts on %s', (kind) => {
  let db: TestDatabase;
  let app: FastifyInstance;
  const revoked: SessionsRevoked[] = [];

  beforeAll(async () => {
    db = await openTestDatabase(kind);
    // A high limit here; the throttling tests build their own app.
    app = await buildApp({ env: testEnv({ LOGIN_MAX_FAILURES: '100' }), database: db.database });
    app.sessionEvents.on('revoked', (event) => revoked.push(event));
  });
  afterAll(async () => {
    await app.close();
    await db.cleanup();
  });

  async function signup(username = uniqueName('user'), password = 'correct horse battery') {
    const answer = await call(app, 'signup', { username, password });
    expect(answer.status).toBe(200);
    return { username, password, token: answer.token ?? '' };
  }

  it('signs up an account, stores an Argon2id hash with the pinned parameters, and signs it in', async () => {
    const answer = await call(app, 'signup', { username: 'Ada_Lovelace', password: 'analytical engine', displayName: 'Ada' });
    expect(answer.status).toBe(200);
    expect(answer.body.result?.data).toMatchObject({ kind: 'ACCOUNT', username: 'ada_lovelace', displayName: 'Ada' });
    expect(await me(app, answer.token ?? '')).toMatchObject({ username: 'ada_lovelace' });
    const row = await db.database.prisma.user.findUniqueOrThrow({ where: { username: 'ada_lovelace' } });
    expect(row.passwordHash?.startsWith(PASSWORD_HASH_PREFIX)).toBe(true);
    expect(row.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(row.passwordHash).not.toContain('analytical engine');
    // Usernames are case-insensitive: the login name is stored lower-cased.
    expect((await call(app, 'login', { username: 'ADA_LOVELACE', password: 'analytical engine' })).status).toBe(200);
  });

  it('refuses a username that is taken, whatever its case', async () => {
    const { username } = await signup();
    const answer = await call(app, 'signup', { username: username.toUpperCase(), password: 'another password' });
    expect(answer.status).toBe(409);
    expect(answer.body.error).toMatchObject({ message: 'That username is taken', data: { code: 'CONFLICT' } });
  });

  it('keeps a guest’s user id and display name when the guest signs up, under a new session', async () => {
    const guest = await call(app, 'guest', { displayName: 'Grace' });
    const guestUser = guest.body.result?.data as { id: string };
    const before = revoked.length;
    const answer = await call(app, 'signup', { username: uniqueName('grace'), password: 'compiler pioneer' }, guest.token);
    expect(answer.status).toBe(200);
    expect(answer.body.result?.data).toMatchObject({ id: guestUser.id, kind: 'ACCOUNT', displayName: 'Grace' });
    expect(await me(app, answer.token ?? '')).toMatchObject({ id: guestUser.id, kind: 'ACCOUNT' });
    expect(sessionId(answer.token)).not.toBe(sessionId(guest.token));
    expect(await me(app, guest.token ?? '')).toBeNull();
    expect(revoked.slice(before)).toEqual([{ userId: guestUser.id, sessionIds: [sessionId(guest.token)] }]);
    expect(await db.database.prisma.user.count({ where: { id: guestUser.id } })).toBe(1);
  });

  describe('RELIABILITY 1: only a hash is stored and a token with one changed character is refused', () => {
    it('stores sha256(secret) and refuses a login token with one character changed in its id or secret', async () => {
      const { token } = await signup();
      const row = await db.database.prisma.session.findUniqueOrThrow({ where: { id: sessionId(token) } });
      expect(row.secretHash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(row)).not.toContain(token.split('.')[1]);
      expect(await me(app, token)).not.toBeNull();
      for (const position of [0, 19, 21, token.length - 1]) {
        expect(await me(app, changeOne(token, position)), `position ${position}`).toBeNull();
      }
      const changed = await call(app, 'changePassword', { currentPassword: 'correct horse battery', newPassword: 'x'.repeat(12) }, changeOne(token, 30));
      expect(changed.status).toBe(401);
    });
  });

  describe('RELIABILITY 3: login issues a new session and logout ends it on the server', () => {
    it('gives a new session at login; the cookie sent with the login stops working and is announced as revoked', async () => {
      const { username, password, token: first } = await signup();
      const before = revoked.length;
      const login = await call(app, 'login', { username, password }, first);
      expect(login.status).toBe(200);
      expect(login.token).toMatch(/^[\w-]{20}\.[\w-]{32}$/);
      expect(sessionId(login.token)).not.toBe(sessionId(first));
      expect(await me(app, first)).toBeNull();
      expect(await me(app, login.token ?? '')).toMatchObject({ username });
      const userId = (login.body.result?.data as { id: string }).id;
      expect(revoked.slice(before)).toEqual([{ userId, sessionIds: [sessionId(first)] }]);
    });

    it('does not adopt a planted session of another person: login replaces it', async () => {
      const planted = (await call(app, 'guest', {})).token ?? '';
      const { username, password } = await signup();
      const login = await call(app, 'login', { username, password }, planted);
      expect(login.status).toBe(200);
      expect(await me(app, planted)).toBeNull();
      expect(await me(app, login.token ?? '')).toMatchObject({ username });
    });

    it('logs out on the server: the cookie is cleared, the token is dead even if replayed, and `revoked` is emitted', async () => {
      const { username, password, token } = await signup();
      const user = (await me(app, token)) as { id: string };
      const other = (await call(app, 'login', { username, password })).token ?? '';
      const before = revoked.length;
      const logout = await call(app, 'logout', undefined, token);
      expect(logout.status).toBe(200);
      expect(logout.token).toBe('');
      expect(await me(app, token)).toBeNull();
      expect(await db.database.prisma.session.count({ where: { id: sessionId(token) } })).toBe(0);
      expect(revoked.slice(before)).toEqual([{ userId: user.id, sessionIds: [sessionId(token)] }]);
      // Another device's session of the same account is not touched by this logout.
      expect(await me(app, other)).toMatchObject({ id: user.id });
      // Logging out with no session is harmless.
      expect((await call(app, 'logout', undefined)).status).toBe(200);
    });
  });

  describe('password change', () => {
    it('needs the current password, ends every other session, keeps this one, and announces the ended ones', async () => {
      const { username, password, token: laptop } = await signup();
      const phone = (await call(app, 'login', { username, password })).token ?? '';
      const tablet = (await call(app, 'login', { username, password })).token ?? '';
      const userId = ((await me(app, laptop)) as { id: string }).id;

      const wrong = await call(app, 'changePassword', { currentPassword: 'not the password', newPassword: 'brand new secret' }, laptop);
      expect(wrong.status).toBe(403);
      expect(await me(app, phone)).not.toBeNull();

      const before = revoked.length;
      const changed = await call(app, 'changePassword', { currentPassword: password, newPassword: 'brand new secret' }, laptop);
      expect(changed.status).toBe(200);
      expect(changed.body.result?.data).toEqual({ revokedSessions: 2 });
      expect(await me(app, laptop)).toMatchObject({ id: userId });
      expect(await me(app, phone)).toBeNull();
      expect(await me(app, tablet)).toBeNull();
      const event = revoked.slice(before);
      expect(event).toHaveLength(1);
      expect(event[0]?.userId).toBe(userId);
      expect([...(event[0]?.sessionIds ?? [])].sort()).toEqual([sessionId(phone), sessionId(tablet)].sort());

      expect((await call(app, 'login', { username, password })).status).toBe(401);
      expect((await call(app, 'login', { username, password: 'brand new secret' })).status).toBe(200);
    });

    it('is refused to guests, who have no password', async () => {
      const guest = (await call(app, 'guest', {})).token;
      const answer = await call(app, 'changePassword', { currentPassword: 'whatever1', newPassword: 'whatever2' }, guest);
      expect(answer.status).toBe(403);
    });
  });

  describe('RELIABILITY 4: sliding idle expiry and an absolute cap', () => {
    it('ends a login session left unused for the idle window, and one used daily at the absolute cap', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const start = Date.parse('2031-01-01T00:00:00Z');
      vi.setSystemTime(start);
      const { username, password, token: idle } = await signup();
      const busy = (await call(app, 'login', { username, password })).token ?? '';
      vi.setSystemTime(start + 13 * 86_400_000);
      expect(await me(app, busy)).not.toBeNull();
      vi.setSystemTime(start + 14 * 86_400_000 + 1000);
      expect(await me(app, idle)).toBeNull();
      for (let day = 20; day < 90; day += 10) {
        vi.setSystemTime(start + day * 86_400_000);
        expect(await me(app, busy), `day ${day}`).not.toBeNull();
      }
      vi.setSystemTime(start + 90 * 86_400_000);
      expect(await me(app, busy)).toBeNull();
    });
  });

  describe('RELIABILITY 5: Argon2id with m=19456, t=2, p=1, passwords of 8 to 1024 characters', () => {
    it('accepts exactly 8 and 1024 characters and refuses 7 and 1025, naming the field', async () => {
      expect((await call(app, 'signup', { username: uniqueName('short'), password: '12345678' })).status).toBe(200);
      expect((await call(app, 'signup', { username: uniqueName('long'), password: 'p'.repeat(1024) })).status).toBe(200);
      for (const password of ['1234567', 'p'.repeat(1025)]) {
        const answer = await call(app, 'signup', { username: uniqueName('bad'), password });
        expect(answer.status).toBe(400);
        expect(answer.body.error?.data).toMatchObject({ code: 'BAD_REQUEST', zodIssues: [{ path: ['password'] }] });
      }
      const tooLongLogin = await call(app, 'login', { username: 'someone', password: 'p'.repeat(1025) });
      expect(tooLongLogin.body.error?.data).toMatchObject({ code: 'BAD_REQUEST', zodIssues: [{ path: ['password'] }] });
    });

    it('never accepts a stored hash that is not Argon2id with the pinned parameters', async () => {
      const { hash } = await import('@node-rs/argon2');
      const weak = await hash('password123', { algorithm: 2, memoryCost: 1024, timeCost: 1, parallelism: 1 });
      const argon2i = await hash('password123', { algorithm: 1, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
      const good = await hash('password123', { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
      expect(await verifyPassword(good, 'password123')).toBe(true);
      expect(await verifyPassword(good, 'password124')).toBe(false);
      expect(await verifyPassword(weak, 'password123')).toBe(false);
      expect(await verifyPassword(argon2i, 'password123')).toBe(false);
      expect(await verifyPassword(null, 'password123')).toBe(false);
      expect(await verifyPassword('password123', 'password123')).toBe(false);
    });
  });

  describe('RELIABILITY 6: unknown user and wrong password answer identically', () => {
    it('gives the same status and body, in a similar time', async () => {
      const { username } = await signup();
      const attempt = async (name: string) => {
        const started = performance.now();
        const response = await app.inject({
          method: 'POST',
          url: '/api/trpc/auth.login',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ username: name, password: 'wrong password' }),
        });
        return { ms: performance.now() - started, status: response.statusCode, body: response.body };
      };
      await attempt(uniqueName('warm-up')); // the dummy hash is made on first use
      const unknown: number[] = [];
      const wrong: number[] = [];
      for (let i = 0; i < 7; i++) {
        const a = await attempt(`nobody-${i}-${process.pid}`);
        const b = await attempt(username);
        expect(a.status).toBe(401);
        expect(b.status).toBe(401);
        expect(a.body).toBe(b.body);
        unknown.push(a.ms);
        wrong.push(b.ms);
      }
      expect(JSON.parse((await attempt(username)).body)).toMatchObject({ error: { message: 'Wrong username or password' } });
      // The fastest of 7 interleaved tries: load on the machine only ever adds time, so the minimum is the
      // steadiest estimate of what each path costs.
      const fastest = (values: number[]) => Math.min(...values);
      // Both pay for one Argon2id verification (tens of ms) and the same queries; neither is a fast path.
      expect(fastest(unknown)).toBeGreaterThan(5);
      expect(fastest(wrong)).toBeGreaterThan(5);
      const ratio = fastest(unknown) / fastest(wrong);
      expect(ratio, `unknown ${fastest(unknown).toFixed(1)} ms, wrong ${fastest(wrong).toFixed(1)} ms`).toBeGreaterThan(0.5);
      expect(ratio).toBeLessThan(2);
    });
  });

  describe('RELIABILITY 7: failed logins are limited per account', () => {
    let throttled: FastifyInstance;
    beforeAll(async () => {
      throttled = await buildApp({ env: testEnv({ LOGIN_MAX_FAILURES: '3', LOGIN_LOCKOUT_SECONDS: '60' }), database: db.database });
    });
    afterAll(() => throttled.close());

    it('locks a username after 3 failures, even for the right password, while another account still signs in', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const start = Date.parse('2032-01-01T00:00:00Z');
      vi.setSystemTime(start);
      const victim = await signup();
      const bystander = await signup();
      for (let i = 0; i < 3; i++) {
        expect((await call(throttled, 'login', { username: victim.username, password: `guess ${i}xx` })).status).toBe(401);
      }
      const locked = await call(throttled, 'login', { username: victim.username, password: victim.password });
      expect(locked.status).toBe(429);
      expect(locked.body.error).toMatchObject({ data: { code: 'TOO_MANY_REQUESTS' } });
      expect(locked.body.error?.message).toMatch(/retry in 60 s/);
      expect(locked.headers['retry-after']).toBe('60');
      expect(locked.token).toBeUndefined();

      expect((await call(throttled, 'login', { username: bystander.username, password: bystander.password })).status).toBe(200);

      vi.setSystemTime(start + 30_000);
      expect((await call(throttled, 'login', { username: victim.username, password: victim.password })).headers['retry-after']).toBe('30');
      vi.setSystemTime(start + 61_000);
      expect((await call(throttled, 'login', { username: victim.username, password: victim.password })).status).toBe(200);
    });

    it('locks an unknown username the same way, so a lockout does not tell which usernames exist', async () => {
      const real = await signup();
      const ghost = uniqueName('ghost');
      const answers = async (username: string) => {
        const statuses: number[] = [];
        for (let i = 0; i < 5; i++) statuses.push((await call(throttled, 'login', { username, password: 'wrong password' })).status);
        return statuses;
      };
      expect(await answers(ghost)).toEqual([401, 401, 401, 429, 429]);
      expect(await answers(real.username)).toEqual([401, 401, 401, 429, 429]);
    });

    it('lets no more than 3 guesses of a parallel burst reach the password check', async () => {
      const target = await signup();
      const burst = await Promise.all(
        Array.from({ length: 12 }, (_, i) => call(throttled, 'login', { username: target.username, password: `burst guess ${i}` })),
      );
      const statuses = burst.map((answer) => answer.status);
      expect(statuses.filter((status) => status === 401)).toHaveLength(3);
      expect(statuses.filter((status) => status === 429)).toHaveLength(9);
    });

    it('counts wrong current passwords at a password change against the same limit', async () => {
      const owner = await signup();
      for (let i = 0; i < 3; i++) {
        const answer = await call(throttled, 'changePassword', { currentPassword: `guess ${i}xx`, newPassword: 'new password 1' }, owner.token);
        expect(answer.status).toBe(403);
      }
      const locked = await call(throttled, 'changePassword', { currentPassword: owner.password, newPassword: 'new password 1' }, owner.token);
      expect(locked.status).toBe(429);
    });
  });
});
