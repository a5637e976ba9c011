// Accounts and sessions through the HTTP API (docs/SECURITY.md): sign-up, login, logout, password change.
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

/** `from`: the client's address (Fastify's request.ip; no proxy is trusted here). */
async function call(
  app: FastifyInstance,
  procedure: string,
  input: unknown,
  token?: string,
  from = '127.0.0.1',
): Promise<Answer> {
  const response = await app.inject({
    method: 'POST',
    url: `/api/trpc/auth.${procedure}`,
    headers: { 'content-type': 'application/json', ...(token ? { cookie: `mesh_session=${token}` } : {}) },
    payload: JSON.stringify(input ?? {}),
    remoteAddress: from,
  });
  const cookie = response.cookies.find((c) => c.name === 'mesh_session');
  return {
    status: response.statusCode,
    body: response.json<TrpcBody>(),
    token: cookie?.value,
    headers: response.headers,
  };
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
    const answer = await call(app, 'signup', {
      username: 'Ada_Lovelace',
      password: 'analytical engine',
      displayName: 'Ada',
    });
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
    const answer = await call(
      app,
      'signup',
      { username: uniqueName('grace'), password: 'compiler pioneer' },
      guest.token,
    );
    expect(answer.status).toBe(200);
    expect(answer.body.result?.data).toMatchObject({ id: guestUser.id, kind: 'ACCOUNT', displayName: 'Grace' });
    expect(await me(app, answer.token ?? '')).toMatchObject({ id: guestUser.id, kind: 'ACCOUNT' });
    expect(sessionId(answer.token)).not.toBe(sessionId(guest.token));
    expect(await me(app, guest.token ?? '')).toBeNull();
    expect(revoked.slice(before)).toEqual([{ userId: guestUser.id, sessionIds: [sessionId(guest.token)] }]);
    expect(await db.database.prisma.user.count({ where: { id: guestUser.id } })).toBe(1);
  });

  it('gives an account signed up without a display name a neutral one, never its username', async () => {
    const username = uniqueName('private');
    const answer = await call(app, 'signup', { username, password: 'correct horse battery' });
    expect(answer.status).toBe(200);
    const { displayName } = answer.body.result?.data as { displayName: string };
    expect(displayName).toMatch(/^Member \d{4}$/);
    expect(displayName).not.toContain(username);
    // A guest who signs up keeps the name it already had.
    const guest = await call(app, 'guest', {});
    const guestName = (guest.body.result?.data as { displayName: string }).displayName;
    const upgraded = await call(
      app,
      'signup',
      { username: uniqueName('private'), password: 'correct horse battery' },
      guest.token,
    );
    expect(upgraded.body.result?.data).toMatchObject({ displayName: guestName });
  });

  it('ends an account session on the server when a guest is made over it, and announces it', async () => {
    const account = await signup();
    const userId = ((await me(app, account.token)) as { id: string }).id;
    const before = revoked.length;
    const guest = await call(app, 'guest', {}, account.token);
    expect(guest.status).toBe(200);
    expect(guest.body.result?.data).toMatchObject({ kind: 'GUEST' });
    expect(await me(app, account.token)).toBeNull();
    expect(await db.database.prisma.session.count({ where: { id: sessionId(account.token) } })).toBe(0);
    expect(revoked.slice(before)).toEqual([{ userId, sessionIds: [sessionId(account.token)] }]);
    expect(await me(app, guest.token ?? '')).toMatchObject({ kind: 'GUEST' });
  });

  it('caps new guests per address per hour (GUEST_CREATIONS_PER_IP_PER_HOUR), other addresses unaffected', async () => {
    const capped = await buildApp({ env: testEnv({ GUEST_CREATIONS_PER_IP_PER_HOUR: '3' }), database: db.database });
    try {
      const users = await db.database.prisma.user.count();
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await call(capped, 'guest', {}, undefined, '127.0.0.20')).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const refused = await call(capped, 'guest', {}, undefined, '127.0.0.20');
      expect(refused.body.error?.data.code).toBe('TOO_MANY_REQUESTS');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(3000);
      expect(refused.token).toBeUndefined();
      expect(await db.database.prisma.user.count()).toBe(users + 3);
      expect((await call(capped, 'guest', {}, undefined, '127.0.0.21')).status).toBe(200);
    } finally {
      await capped.close();
    }
  });

  describe('only a hash is stored and a token with one changed character is refused', () => {
    it('stores sha256(secret) and refuses a login token with one character changed in its id or secret', async () => {
      const { token } = await signup();
      const row = await db.database.prisma.session.findUniqueOrThrow({ where: { id: sessionId(token) } });
      expect(row.secretHash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(row)).not.toContain(token.split('.')[1]);
      expect(await me(app, token)).not.toBeNull();
      for (const position of [0, 19, 21, token.length - 1]) {
        expect(await me(app, changeOne(token, position)), `position ${position}`).toBeNull();
      }
      const changed = await call(
        app,
        'changePassword',
        { currentPassword: 'correct horse battery', newPassword: 'x'.repeat(12) },
        changeOne(token, 30),
      );
      expect(changed.status).toBe(401);
    });
  });

  describe('login issues a new session and logout ends it on the server', () => {
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

      const wrong = await call(
        app,
        'changePassword',
        { currentPassword: 'not the password', newPassword: 'brand new secret' },
        laptop,
      );
      expect(wrong.status).toBe(403);
      expect(await me(app, phone)).not.toBeNull();

      const before = revoked.length;
      const changed = await call(
        app,
        'changePassword',
        { currentPassword: password, newPassword: 'brand new secret' },
        laptop,
      );
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
      const answer = await call(
        app,
        'changePassword',
        { currentPassword: 'whatever1', newPassword: 'whatever2' },
        guest,
      );
      expect(answer.status).toBe(403);
    });
  });

  describe('sliding idle expiry and an absolute cap', () => {
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

  describe('Argon2id with m=19456, t=2, p=1, passwords of 8 to 1024 characters', () => {
    it('accepts exactly 8 and 1024 characters and refuses 7 and 1025, naming the field', async () => {
      expect((await call(app, 'signup', { username: uniqueName('short'), password: '12345678' })).status).toBe(200);
      expect((await call(app, 'signup', { username: uniqueName('long'), password: 'p'.repeat(1024) })).status).toBe(
        200,
      );
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

  describe('unknown user and wrong password answer identically', () => {
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
        expect(a.status, a.body).toBe(401);
        expect(b.status).toBe(401);
        expect(a.body).toBe(b.body);
        unknown.push(a.ms);
        wrong.push(b.ms);
      }
      expect(JSON.parse((await attempt(username)).body)).toMatchObject({
        error: { message: 'Wrong username or password' },
      });
      // The fastest of 7 interleaved tries: load on the machine only ever adds time, so the minimum is the
      // steadiest estimate of what each path costs.
      const fastest = (values: number[]) => Math.min(...values);
      // Both pay for one Argon2id verification (tens of ms) and the same queries; neither is a fast path.
      expect(fastest(unknown)).toBeGreaterThan(5);
      expect(fastest(wrong)).toBeGreaterThan(5);
      const ratio = fastest(unknown) / fastest(wrong);
      expect(ratio, `unknown ${fastest(unknown).toFixed(1)} ms, wrong ${fastest(wrong).toFixed(1)} ms`).toBeGreaterThan(
        0.5,
      );
      expect(ratio).toBeLessThan(2);
    });
  });

  describe('failed sign-ins slow the guesser down without locking the owner out', () => {
    let throttled: FastifyInstance;
    beforeAll(async () => {
      // 3 failures per username and address before the waits start, an address 30 across usernames, waits up to 60 s.
      throttled = await buildApp({
        env: testEnv({ LOGIN_MAX_FAILURES: '3', LOGIN_LOCKOUT_SECONDS: '60' }),
        database: db.database,
      });
    });
    afterAll(() => throttled.close());

    /** Time stands still unless a test moves it, so a wait of 1 s cannot run out while Argon2 works. */
    function freezeTime(iso: string): (ms: number) => void {
      vi.useFakeTimers({ toFake: ['Date'] });
      let now = Date.parse(iso);
      vi.setSystemTime(now);
      return (ms) => {
        now += ms;
        vi.setSystemTime(now);
      };
    }

    const login = (username: string, password: string, from: string) =>
      call(throttled, 'login', { username, password }, undefined, from);

    it('holds up a username hammered from one address, even with the right password, while its owner signs in from another', async () => {
      freezeTime('2032-01-01T00:00:00Z');
      const victim = await signup();
      const attacker = '127.0.0.2';
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await login(victim.username, `guess ${i}xx`, attacker)).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);

      const held = await login(victim.username, victim.password, attacker);
      expect(held.status).toBe(429);
      expect(held.body.error).toMatchObject({
        message: 'Too many failed sign-ins for this username from this address; retry in 1 s',
        data: { code: 'TOO_MANY_REQUESTS' },
      });
      expect(held.headers['retry-after']).toBe('1');
      expect(held.token).toBeUndefined();

      const owner = await login(victim.username, victim.password, '127.0.0.3');
      expect(owner.status).toBe(200);
      expect(await me(app, owner.token ?? '')).toMatchObject({ username: victim.username });
      // The owner's success elsewhere does not wipe the attacker's count.
      expect((await login(victim.username, 'one more guess', attacker)).status).toBe(429);
    });

    it('doubles the wait with each further failure up to LOGIN_LOCKOUT_SECONDS, and a success starts the count again', async () => {
      const advance = freezeTime('2032-02-01T00:00:00Z');
      const user = await signup();
      const guess = (password = 'wrong password') => login(user.username, password, '127.0.0.4');
      for (let i = 0; i < 3; i++) expect((await guess()).status).toBe(401);
      const waits: number[] = [];
      for (let i = 0; i < 8; i++) {
        const held = await guess();
        expect(held.status).toBe(429);
        const seconds = Number(held.headers['retry-after']);
        waits.push(seconds);
        advance(seconds * 1000 - 1);
        expect((await guess()).status, 'a millisecond early').toBe(429);
        advance(1);
        expect((await guess()).status).toBe(401);
      }
      expect(waits).toEqual([1, 2, 4, 8, 16, 32, 60, 60]);

      advance(60_000);
      expect((await guess(user.password)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await guess()).status).toBe(401);
      expect((await guess()).headers['retry-after']).toBe('1');
    });

    it('slows an address that tries many usernames, while the same usernames from elsewhere are not held up', async () => {
      freezeTime('2032-03-01T00:00:00Z');
      const real = await signup();
      const sprayer = '127.0.0.5';
      const names = Array.from({ length: 30 }, () => uniqueName('spray'));
      // One failure each: no username reaches its own limit, but the address reaches 10 x 3.
      for (const name of names) expect((await login(name, 'password1', sprayer)).status).toBe(401);
      const held = await login(uniqueName('spray'), 'password1', sprayer);
      expect(held.status).toBe(429);
      expect(held.body.error?.message).toBe('Too many failed sign-ins from this address; retry in 1 s');
      expect((await login(real.username, real.password, sprayer)).status).toBe(429);

      const elsewhere = '127.0.0.6';
      expect((await login(names[0] ?? '', 'password1', elsewhere)).status).toBe(401);
      expect((await login(real.username, real.password, elsewhere)).status).toBe(200);
    });

    it('holds up an unknown username exactly as an existing one, so a wait does not tell which usernames exist', async () => {
      freezeTime('2032-04-01T00:00:00Z');
      const real = await signup();
      const ghost = uniqueName('ghost');
      const answers = async (username: string) => {
        const all: Answer[] = [];
        for (let i = 0; i < 5; i++) all.push(await login(username, 'wrong password', '127.0.0.7'));
        return all;
      };
      const [forGhost, forReal] = [await answers(ghost), await answers(real.username)];
      expect(forGhost.map((answer) => answer.status)).toEqual([401, 401, 401, 429, 429]);
      expect(forReal.map((answer) => answer.status)).toEqual([401, 401, 401, 429, 429]);
      expect(forGhost.map((answer) => answer.body)).toEqual(forReal.map((answer) => answer.body));
      expect(forGhost.map((answer) => answer.headers['retry-after'])).toEqual(
        forReal.map((answer) => answer.headers['retry-after']),
      );
    });

    it('lets no more than 3 guesses of a parallel burst reach the password check', async () => {
      freezeTime('2032-05-01T00:00:00Z');
      const target = await signup();
      const burst = await Promise.all(
        Array.from({ length: 12 }, (_, i) => login(target.username, `burst guess ${i}`, '127.0.0.8')),
      );
      const statuses = burst.map((answer) => answer.status);
      expect(statuses.filter((status) => status === 401)).toHaveLength(3);
      expect(statuses.filter((status) => status === 429)).toHaveLength(9);
    });

    it('counts wrong current passwords at a password change against the same limit', async () => {
      freezeTime('2032-06-01T00:00:00Z');
      const owner = await signup();
      const change = (currentPassword: string) =>
        call(throttled, 'changePassword', { currentPassword, newPassword: 'new password 1' }, owner.token, '127.0.0.9');
      for (let i = 0; i < 3; i++) expect((await change(`guess ${i}xx`)).status).toBe(403);
      expect((await change(owner.password)).status).toBe(429);
    });

    it('ignores the per-account lock the database used to keep (User.failedLogins, User.lockedUntil)', async () => {
      const user = await signup();
      await db.database.prisma.user.update({
        where: { username: user.username },
        data: { failedLogins: 99, lockedUntil: new Date(Date.now() + 3_600_000) },
      });
      expect((await login(user.username, user.password, '127.0.0.10')).status).toBe(200);
    });
  });
});
