// Costs and quotas of cloud chat (docs/SECURITY.md): who may use the paid providers, which models they answer, how
// many chats the whole server runs at once, and daily token budgets per person and per server, each refused with
// its own code before any upstream request. Every server here has a fresh database, so budgets start at zero.
import { TRPCClientError } from '@trpc/client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FakeOpenAI, tokenize } from '../scripts/fake-openai.ts';
import { buildApp } from '../src/server/app.ts';
import { estimateTokens } from '../src/server/providers/budget.ts';
import { createSession, sessionPolicy } from '../src/server/services/session.ts';
import { SERVER_SCOPE, recordTokens } from '../src/server/services/token-usage.ts';
import type { AppRouter } from '../src/server/trpc/root.ts';
import type { ChatInput } from '../src/shared/schemas/chat.ts';
import { type ChatClient, chatClient, openStream, streamChat } from './support/chat-client.ts';
import { type TestDatabase, databaseKinds, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { guestCookie } from './support/server-process.ts';

let fake: FakeOpenAI;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  fake = new FakeOpenAI();
  // The built-in default of the openai provider, for the servers that list no models.
  fake.models.add('gpt-4o-mini');
  await fake.start();
});
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
  fake.reset();
});
afterAll(() => fake?.stop());

interface Server {
  db: TestDatabase;
  account(username: string): Promise<{ client: ChatClient; userId: string }>;
  guest(): Promise<ChatClient>;
  /** Today's TokenUsage rows, by scope. */
  usage(): Promise<Record<string, number>>;
}

/** A listening server on the fake OpenAI (model gpt-test unless overridden), on a fresh database unless given one. */
async function serve(overrides: Record<string, string>, shared?: TestDatabase): Promise<Server> {
  const db = shared ?? (await openTestDatabase('pglite'));
  const app = await buildApp({
    env: testEnv({
      OPENAI_API_KEY: fake.apiKey,
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODELS: 'gpt-test',
      ...overrides,
    }),
    database: db.database,
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  stops.push(async () => {
    // The SSE test client leaves aborted streams' sockets open for seconds; the server is done with them.
    app.server.closeAllConnections();
    await app.close();
    if (!shared) await db.cleanup();
  });
  const { prisma } = db.database;
  return {
    db,
    async account(username) {
      const user = await prisma.user.create({
        data: { kind: 'ACCOUNT', username, displayName: username },
        select: { id: true },
      });
      const { token } = await createSession(prisma, user.id, sessionPolicy(14, 90));
      return { client: chatClient(base, `mesh_session=${token}`), userId: user.id };
    },
    guest: async () => chatClient(base, await guestCookie(base)),
    async usage() {
      const rows = await prisma.tokenUsage.findMany({
        where: { day: new Date(new Date().toISOString().slice(0, 10)) },
        select: { scope: true, tokens: true },
      });
      return Object.fromEntries(rows.map((row) => [row.scope, row.tokens]));
    },
  };
}

const hello: ChatInput = {
  provider: 'openai',
  model: 'gpt-test',
  messages: [{ role: 'user', content: 'hello there' }],
};
const stub: ChatInput = { provider: 'stub', messages: hello.messages };
/** What the fake reports for `hello`: 10 prompt tokens a message, one token per 4 characters of its echo. */
const HELLO_TOKENS = 10 + tokenize('Echo: hello there').length;

function failure(error: unknown) {
  expect(error).toBeInstanceOf(TRPCClientError);
  const data = (error as TRPCClientError<AppRouter>).data;
  return { message: (error as Error).message, code: data?.code, provider: data?.providerError };
}
const refusalOf = async (client: ChatClient, input: ChatInput) => failure((await streamChat(client, input)).error);

function nextUtcMidnight(): Date {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
}

describe('who may use which provider and model', () => {
  it('refuses a paid provider to a guest with ACCOUNT_REQUIRED before any upstream request, while guests keep the stub', async () => {
    const server = await serve({});
    const guest = await server.guest();
    const refused = await refusalOf(guest, hello);
    expect(refused).toMatchObject({ code: 'FORBIDDEN', provider: { code: 'ACCOUNT_REQUIRED' } });
    expect(refused.message).toBe(
      'OpenAI is for accounts on this server: sign up or log in to use it (guests can use the stub)',
    );
    expect(failure(await guest.chat.send.mutate(hello).catch((e: unknown) => e)).provider?.code).toBe(
      'ACCOUNT_REQUIRED',
    );
    expect(fake.requests).toHaveLength(0);

    expect((await streamChat(guest, stub)).error).toBeNull();
    expect((await streamChat((await server.account('ada')).client, hello)).error).toBeNull();
    expect(fake.requests).toHaveLength(1);
    expect((await guest.chat.providers.query()).map((p) => [p.id, p.openToGuests])).toEqual([
      ['stub', true],
      ['openai', false],
      ['openrouter', false],
      ['huggingface', false],
    ]);
  });

  it('opens the paid providers to guests with CHAT_PROVIDERS_FOR_GUESTS', async () => {
    const guest = await (await serve({ CHAT_PROVIDERS_FOR_GUESTS: 'true' })).guest();
    expect((await streamChat(guest, hello)).error).toBeNull();
    expect((await guest.chat.providers.query()).every((p) => p.openToGuests)).toBe(true);
  });

  it('refuses a model outside the allow-list with MODEL_NOT_ALLOWED before any upstream request', async () => {
    const db = await openTestDatabase('pglite');
    stops.push(() => db.cleanup());

    // Unset: only the provider's own default.
    const unset = await (await serve({ OPENAI_MODELS: '' }, db)).account('unset');
    const refused = await refusalOf(unset.client, hello);
    expect(refused).toMatchObject({ code: 'FORBIDDEN', provider: { code: 'MODEL_NOT_ALLOWED' } });
    expect(refused.message).toBe('OpenAI on this server does not offer the model "gpt-test"; it offers gpt-4o-mini');
    expect(failure(await unset.client.chat.send.mutate(hello).catch((e: unknown) => e)).provider?.code).toBe(
      'MODEL_NOT_ALLOWED',
    );
    expect(fake.requests).toHaveLength(0);
    expect((await streamChat(unset.client, { ...hello, model: undefined })).error).toBeNull();
    expect(fake.requests.map((r) => (r.body as { model: string }).model)).toEqual(['gpt-4o-mini']);

    // A list: those models, the first one the default.
    fake.reset();
    const listed = await serve({ OPENAI_MODELS: 'gpt-test, openai/gpt-test' }, db);
    const { client } = await listed.account('listed');
    expect((await client.chat.providers.query()).find((p) => p.id === 'openai')?.defaultModel).toBe('gpt-test');
    expect((await streamChat(client, { ...hello, model: undefined })).error).toBeNull();
    expect((await streamChat(client, { ...hello, model: 'openai/gpt-test' })).error).toBeNull();
    expect((await refusalOf(client, { ...hello, model: 'gpt-4o-mini' })).message).toBe(
      'OpenAI on this server does not offer the model "gpt-4o-mini"; it offers gpt-test, openai/gpt-test',
    );
    expect(fake.requests.map((r) => (r.body as { model: string }).model)).toEqual(['gpt-test', 'openai/gpt-test']);

    // `*`: any model reaches the provider, which has the last word.
    fake.reset();
    const any = await (await serve({ OPENAI_MODELS: '*' }, db)).account('any');
    expect((await refusalOf(any.client, { ...hello, model: 'gpt-missing' })).provider?.code).toBe('MODEL_NOT_FOUND');
    // The stub answers whatever model it is asked for: it only seeds its canned text.
    expect((await streamChat(any.client, { ...stub, model: 'anything-at-all' })).error).toBeNull();
  });
});

describe('the server-wide cap on concurrent provider chats', () => {
  it('refuses a chat over CHAT_MAX_STREAMS with SERVER_BUSY, distinct from one person’s TOO_MANY_STREAMS', async () => {
    const server = await serve({ CHAT_MAX_STREAMS: '2', CHAT_MAX_STREAMS_PER_USER: '1' });
    const [ada, bob, cy] = await Promise.all(['ada', 'bob', 'cy'].map((name) => server.account(name)));
    fake.fault = { kind: 'slow', delayMs: 100 };
    fake.reply = () => 'word '.repeat(200);
    const held = [openStream(ada!.client, hello), openStream(bob!.client, hello)];
    await Promise.all(held.map((stream) => stream.firstDelta));

    expect(await refusalOf(ada!.client, hello)).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      provider: { code: 'TOO_MANY_STREAMS' },
    });
    const busy = await refusalOf(cy!.client, hello);
    expect(busy).toMatchObject({ code: 'TOO_MANY_REQUESTS', provider: { code: 'SERVER_BUSY' } });
    expect(busy.message).toBe('This server is running as many cloud chats as it can (2); try again in a moment');
    expect(failure(await cy!.client.chat.send.mutate(stub).catch((e: unknown) => e)).provider?.code).toBe(
      'SERVER_BUSY',
    );
    expect(fake.requests).toHaveLength(2);

    for (const stream of held) stream.unsubscribe();
    await vi.waitFor(async () => expect((await streamChat(cy!.client, stub)).error).toBeNull(), { timeout: 5000 });
  });
});

describe('daily token budgets', () => {
  it('counts reported usage and refuses a person past CHAT_DAILY_TOKENS_PER_USER with USER_BUDGET_SPENT until 00:00 UTC', async () => {
    const server = await serve({ CHAT_DAILY_TOKENS_PER_USER: String(2 * HELLO_TOKENS) });
    const ada = await server.account('ada');
    expect((await streamChat(ada.client, hello)).error).toBeNull();
    expect(await server.usage()).toEqual({ [ada.userId]: HELLO_TOKENS, [SERVER_SCOPE]: HELLO_TOKENS });
    await ada.client.chat.send.mutate(hello);
    expect(await server.usage()).toEqual({ [ada.userId]: 2 * HELLO_TOKENS, [SERVER_SCOPE]: 2 * HELLO_TOKENS });

    const spent = await refusalOf(ada.client, hello);
    const resetsAt = nextUtcMidnight();
    expect(spent).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      provider: { code: 'USER_BUDGET_SPENT', resetsAt: resetsAt.toISOString() },
    });
    expect(spent.message).toBe(
      `You have used today's ${2 * HELLO_TOKENS} cloud tokens; it starts again at 00:00 UTC (${resetsAt.toISOString()})`,
    );
    expect(Math.abs((spent.provider?.retryAfterSeconds ?? 0) - (resetsAt.getTime() - Date.now()) / 1000)).toBeLessThan(
      10,
    );
    expect(failure(await ada.client.chat.send.mutate(hello).catch((e: unknown) => e)).provider?.code).toBe(
      'USER_BUDGET_SPENT',
    );
    expect(fake.requests).toHaveLength(2);

    // The stub costs nothing, and someone else's budget is their own.
    expect((await streamChat(ada.client, stub)).error).toBeNull();
    expect((await streamChat((await server.account('bob')).client, hello)).error).toBeNull();
    expect(fake.requests).toHaveLength(3);
  });

  it('refuses everyone once the server has spent CHAT_DAILY_TOKENS, with SERVER_BUDGET_SPENT', async () => {
    const server = await serve({ CHAT_DAILY_TOKENS: String(3 * HELLO_TOKENS) });
    const [ada, bob] = await Promise.all(['ada', 'bob'].map((name) => server.account(name)));
    await ada!.client.chat.send.mutate(hello);
    await ada!.client.chat.send.mutate(hello);
    await bob!.client.chat.send.mutate(hello);
    expect((await server.usage())[SERVER_SCOPE]).toBe(3 * HELLO_TOKENS);

    for (const client of [ada!.client, bob!.client, (await server.account('cy')).client]) {
      const refused = await refusalOf(client, hello);
      expect(refused).toMatchObject({
        code: 'TOO_MANY_REQUESTS',
        provider: { code: 'SERVER_BUDGET_SPENT', resetsAt: nextUtcMidnight().toISOString() },
      });
      expect(refused.message).toMatch(/^This server has used today's cloud token budget; it starts again at 00:00 UTC/);
    }
    expect(fake.requests).toHaveLength(3);
    expect((await streamChat(bob!.client, stub)).error).toBeNull();
  });

  it('estimates characters / 4 when the provider reports no usage, and counts what was streamed when the client leaves', async () => {
    const server = await serve({});
    const ada = await server.account('ada');
    fake.fault = { kind: 'no-usage' };
    expect((await streamChat(ada.client, hello)).error).toBeNull();
    const first = estimateTokens('hello there'.length + 'Echo: hello there'.length);
    expect(await server.usage()).toEqual({ [ada.userId]: first, [SERVER_SCOPE]: first });

    fake.fault = { kind: 'slow', delayMs: 50 };
    const reply = 'word '.repeat(200);
    fake.reply = () => reply;
    const running = openStream(ada.client, hello);
    await running.firstDelta;
    running.unsubscribe();
    await vi.waitFor(() => expect(fake.requests[1]).toMatchObject({ aborted: true, completed: false }), {
      timeout: 8000,
    });
    await vi.waitFor(async () => expect((await server.usage())[ada.userId]).toBeGreaterThan(first), { timeout: 5000 });
    const left = ((await server.usage())[ada.userId] ?? 0) - first;
    // The prompt and at least the one delta the client saw; far less than the whole answer.
    expect(left).toBeGreaterThanOrEqual(estimateTokens('hello there'.length + 4));
    expect(left).toBeLessThan(estimateTokens('hello there'.length + reply.length) / 2);
  });

  it('charges nothing for the stub, nor for a provider that failed before sending any text', async () => {
    const server = await serve({});
    const ada = await server.account('ada');
    expect((await streamChat(ada.client, stub)).error).toBeNull();
    await ada.client.chat.send.mutate(stub);
    fake.fault = { kind: 'status', status: 500 };
    expect((await refusalOf(ada.client, hello)).provider?.code).toBe('UPSTREAM_ERROR');
    expect(await server.usage()).toEqual({});
  });
});

describe.each(databaseKinds())('token usage records on %s', (kind) => {
  it('adds concurrent chats’ usage without losing any', async () => {
    const db = await openTestDatabase(kind);
    try {
      const { prisma } = db.database;
      const users = await Promise.all(
        ['ada', 'bob'].map((username) =>
          prisma.user.create({ data: { kind: 'ACCOUNT', username, displayName: username } }),
        ),
      );
      const now = new Date();
      await Promise.all(
        users.flatMap((user) => Array.from({ length: 20 }, () => recordTokens(prisma, user.id, 7, now))),
      );
      const rows = await prisma.tokenUsage.findMany({
        select: { scope: true, tokens: true },
        orderBy: { scope: 'asc' },
      });
      expect(Object.fromEntries(rows.map((row) => [row.scope, row.tokens]))).toEqual({
        [users[0]!.id]: 140,
        [users[1]!.id]: 140,
        [SERVER_SCOPE]: 280,
      });
    } finally {
      await db.cleanup();
    }
  });
});
