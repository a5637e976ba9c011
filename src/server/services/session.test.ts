import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type TestDatabase, openTestDatabase } from '../../../tests/support/database.ts';
import {
  createSession,
  invalidateOtherSessions,
  invalidateSession,
  sessionPolicy,
  validateSessionToken,
} from './session.ts';

const DAY = 24 * 60 * 60 * 1000;
const policy = sessionPolicy(14, 90);
let db: TestDatabase;
let userId: string;

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  userId = (await db.database.prisma.user.create({ data: { displayName: 'Tester' } })).id;
});
afterAll(() => db.cleanup());
afterEach(() => vi.useRealTimers());

describe('sessions', () => {
  it('store only a hash of the secret', async () => {
    const { token, session } = await createSession(db.database.prisma, userId, policy);
    const secret = token.split('.')[1] ?? '';
    const row = await db.database.prisma.session.findUniqueOrThrow({ where: { id: session.id } });
    expect(row.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(secret);
  });

  it('refuse a token with one changed character, in the id or in the secret', async () => {
    const { token } = await createSession(db.database.prisma, userId, policy);
    expect(await validateSessionToken(db.database.prisma, token, policy)).toMatchObject({ userId });
    for (const position of [0, 19, 21, token.length - 1]) {
      const changed = token.slice(0, position) + (token[position] === 'A' ? 'B' : 'A') + token.slice(position + 1);
      expect(await validateSessionToken(db.database.prisma, changed, policy)).toBeNull();
    }
    expect(await validateSessionToken(db.database.prisma, `${token}x`, policy)).toBeNull();
    expect(await validateSessionToken(db.database.prisma, '', policy)).toBeNull();
  });

  it('slide the idle expiry forward with use', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const { token } = await createSession(db.database.prisma, userId, policy);
    // Used every 10 days: each use is inside the 14-day idle window, so it lives past 14 days.
    for (let day = 10; day <= 60; day += 10) {
      vi.setSystemTime(new Date(Date.parse('2026-01-01T00:00:00Z') + day * DAY));
      expect(await validateSessionToken(db.database.prisma, token, policy), `day ${day}`).not.toBeNull();
    }
  });

  it('expire after the idle window without use', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const { token, session } = await createSession(db.database.prisma, userId, policy);
    vi.setSystemTime(new Date(Date.parse('2026-01-01T00:00:00Z') + 14 * DAY + 1000));
    expect(await validateSessionToken(db.database.prisma, token, policy)).toBeNull();
    expect(await db.database.prisma.session.findUnique({ where: { id: session.id } })).toBeNull();
  });

  it('expire at the absolute cap however often they are used', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.parse('2026-01-01T00:00:00Z');
    vi.setSystemTime(new Date(start));
    const { token } = await createSession(db.database.prisma, userId, policy);
    for (let day = 7; day < 90; day += 7) {
      vi.setSystemTime(new Date(start + day * DAY));
      expect(await validateSessionToken(db.database.prisma, token, policy), `day ${day}`).not.toBeNull();
    }
    vi.setSystemTime(new Date(start + 90 * DAY));
    expect(await validateSessionToken(db.database.prisma, token, policy)).toBeNull();
  });

  it('stop working once invalidated', async () => {
    const { token, session } = await createSession(db.database.prisma, userId, policy);
    await invalidateSession(db.database.prisma, session.id);
    expect(await validateSessionToken(db.database.prisma, token, policy)).toBeNull();
  });

  it('end all other sessions of one user, returning exactly the ids they ended', async () => {
    const prisma = db.database.prisma;
    const someoneElse = (await prisma.user.create({ data: { displayName: 'Other' } })).id;
    const [kept, a, b, theirs] = await Promise.all([
      createSession(prisma, userId, policy),
      createSession(prisma, userId, policy),
      createSession(prisma, userId, policy),
      createSession(prisma, someoneElse, policy),
    ]);
    const before = await prisma.session.findMany({ where: { userId }, select: { id: true } });
    const ended = await invalidateOtherSessions(prisma, userId, kept.session.id);
    expect(ended).toEqual(expect.arrayContaining([a.session.id, b.session.id]));
    expect(ended).toHaveLength(before.length - 1);
    expect(await validateSessionToken(prisma, kept.token, policy)).not.toBeNull();
    expect(await validateSessionToken(prisma, a.token, policy)).toBeNull();
    expect(await validateSessionToken(prisma, theirs.token, policy)).not.toBeNull();
    expect(await invalidateOtherSessions(prisma, userId, kept.session.id)).toEqual([]);
  });
});
