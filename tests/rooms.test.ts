// Rooms over HTTP: an account owns at most ROOMS_PER_ACCOUNT rooms (a burst included), room creation spends its
// budget, and room.list gives the global room, then the others by recent activity, a page at a time.
import { TRPCClientError } from '@trpc/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { chatClient } from './support/chat-client.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { accountCookie } from './support/accounts.ts';

let db: TestDatabase;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({ ROOMS_PER_ACCOUNT: '3', ROOM_CREATIONS_PER_USER_PER_HOUR: '6' }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await db?.cleanup();
});

let counter = 0;
async function account() {
  const { cookie, userId } = await accountCookie(db.database.prisma, `rooms-${++counter}`);
  return { api: chatClient(base, cookie), userId };
}

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => null,
    (error: unknown) =>
      error instanceof TRPCClientError
        ? { code: String(error.data?.code), message: error.message }
        : { code: 'OTHER', message: String(error) },
  );

describe('rooms an account owns', () => {
  it('are capped at ROOMS_PER_ACCOUNT, even for a burst of creations, while another account still creates', async () => {
    const owner = await account();
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        refusal(owner.api.room.create.mutate({ name: `Mine ${i}`, visibility: 'PRIVATE' })),
      ),
    );
    expect(results.filter((result) => result === null)).toHaveLength(3);
    expect(results.filter((result) => result !== null)).toEqual(
      Array.from({ length: 2 }, () => ({ code: 'FORBIDDEN', message: 'An account may own at most 3 rooms' })),
    );
    expect(await db.database.prisma.room.count({ where: { ownerId: owner.userId } })).toBe(3);
    expect(
      await refusal((await account()).api.room.create.mutate({ name: 'Theirs', visibility: 'PRIVATE' })),
    ).toBeNull();
  });

  it('are created within ROOM_CREATIONS_PER_USER_PER_HOUR, refusals included', async () => {
    const owner = await account();
    const codes: Array<string | null> = [];
    for (let i = 0; i < 7; i++)
      codes.push(
        (await refusal(owner.api.room.create.mutate({ name: `Try ${i}`, visibility: 'PRIVATE' })))?.code ?? null,
      );
    // 3 made, 3 refused by the cap, then the hour's 6 creations are spent.
    expect(codes).toEqual([null, null, null, 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'TOO_MANY_REQUESTS']);
  });
});

describe('room.list', () => {
  it('lists the global room first, then rooms by recent activity (create, join, leave), a page at a time', async () => {
    const [owner, other, visitor, viewer] = [await account(), await account(), await account(), await account()];
    const made: string[] = [];
    // Two owners: each may own 3 rooms here.
    for (let i = 1; i <= 5; i++)
      made.push((await (i <= 3 ? owner : other).api.room.create.mutate({ name: `Hall ${i}` })).slug);
    // Spread out in time, oldest first: Hall 1 ... Hall 5.
    const start = Date.now() - 3_600_000;
    for (const [i, slug] of made.entries()) {
      await db.database.prisma.room.update({ where: { slug }, data: { lastActiveAt: new Date(start + i * 60_000) } });
    }
    const slugs = (page: { rooms: Array<{ slug: string }> }) => page.rooms.map((room) => room.slug);
    // The owner's private rooms from the tests above are not the viewer's to see.
    expect(slugs(await viewer.api.room.list.query())).toEqual(['global', ...[...made].reverse()]);

    const [hall1, hall2, hall3, hall4, hall5] = made as [string, string, string, string, string];
    await visitor.api.room.join.mutate({ room: hall2 });
    const first = await viewer.api.room.list.query({ limit: 2 });
    expect(slugs(first)).toEqual(['global', hall2, hall5]);
    expect(first.nextCursor).toEqual(expect.any(String));
    // As the Rooms screen's infinite query asks for the next page.
    const second = await viewer.api.room.list.query({ limit: 2, cursor: first.nextCursor, direction: 'forward' });
    expect(slugs(second)).toEqual([hall4, hall3]);
    const third = await viewer.api.room.list.query({ limit: 2, cursor: second.nextCursor });
    expect(slugs(third)).toEqual([hall1]);
    expect(third.nextCursor).toBeNull();
    expect(second.rooms.find((room) => room.slug === hall4)).toMatchObject({
      name: 'Hall 4',
      memberCount: 1,
      role: null,
    });

    // Leaving is activity too.
    await visitor.api.room.join.mutate({ room: hall1 });
    await visitor.api.room.leave.mutate({ room: hall1 });
    expect(slugs(await viewer.api.room.list.query({ limit: 1 }))).toEqual(['global', hall1]);
  });

  it('refuses unknown keys, a bad cursor, a page over 50 rooms and paging backwards', async () => {
    const { api } = await account();
    for (const input of [
      { limit: 2, extra: true },
      { cursor: 'not-a-cursor' },
      { limit: 51 },
      { limit: 0 },
      { direction: 'backward' },
    ]) {
      expect(await refusal(api.room.list.query(input as never)), JSON.stringify(input)).toMatchObject({
        code: 'BAD_REQUEST',
      });
    }
  });
});
