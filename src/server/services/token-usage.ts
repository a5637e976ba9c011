// Provider tokens spent per UTC day (TokenUsage): one row per user (scope = the user id) and one for the server.
import { type Spent, utcDay } from '../providers/budget.ts';
import type { PrismaClient } from '../db/client.ts';

export const SERVER_SCOPE = 'server';
/** The column is a 4-byte integer. */
const MAX_TOKENS = 2_147_483_647;

export async function spentToday(db: PrismaClient, userId: string, now: Date): Promise<Spent> {
  const rows = await db.tokenUsage.findMany({
    where: { day: new Date(utcDay(now)), scope: { in: [userId, SERVER_SCOPE] } },
    select: { scope: true, tokens: true },
  });
  const of = (scope: string) => rows.find((row) => row.scope === scope)?.tokens ?? 0;
  return { user: of(userId), server: of(SERVER_SCOPE) };
}

/** Adds to today's user and server rows in one statement: concurrent chats never lose each other's counts. */
export async function recordTokens(db: PrismaClient, userId: string, tokens: number, now: Date): Promise<void> {
  const amount = Math.min(Math.ceil(tokens), MAX_TOKENS);
  if (!(amount > 0)) return;
  const day = utcDay(now);
  await db.$executeRaw`
    INSERT INTO "TokenUsage" ("scope", "day", "tokens", "updatedAt")
    VALUES (${userId}, ${day}::date, ${amount}, now() AT TIME ZONE 'UTC'), (${SERVER_SCOPE}, ${day}::date, ${amount}, now() AT TIME ZONE 'UTC')
    ON CONFLICT ("scope", "day") DO UPDATE
    SET "tokens" = LEAST("TokenUsage"."tokens"::bigint + EXCLUDED."tokens", ${MAX_TOKENS})::integer, "updatedAt" = EXCLUDED."updatedAt"`;
}
