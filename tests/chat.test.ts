// Cloud chat through a listening server and the real tRPC client (SSE subscriptions), against a fake
// OpenAI-compatible API that speaks the real protocol and injects faults.
import { TRPCClientError } from '@trpc/client';
import type { FastifyInstance } from 'fastify';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeOpenAI, tokenize } from '../scripts/fake-openai.ts';
import { buildApp } from '../src/server/app.ts';
import { createSession, sessionPolicy } from '../src/server/services/session.ts';
import type { AppRouter } from '../src/server/trpc/root.ts';
import type { ChatInput } from '../src/shared/schemas/chat.ts';
import { type ChatClient, chatClient, openStream, streamChat } from './support/chat-client.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { guestCookie } from './support/server-process.ts';

// A collection between the start of a stream and the client leaving once hid the leaving from the chat (tRPC's
// signal follows undici's Request weakly: nodejs/undici#3644); the abort tests collect on purpose.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const HF_TOKEN = 'hf_WrongTokenTheFakeRefuses0123';
const TIMEOUT_MS = 400;
const MAX_STREAMS = 2;

let fake: FakeOpenAI;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let guest: ChatClient;

beforeAll(async () => {
  fake = new FakeOpenAI();
  await fake.start();
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      OPENAI_API_KEY: fake.apiKey,
      OPENAI_BASE_URL: fake.baseUrl,
      // OpenRouter stays unconfigured; Hugging Face points at the fake with a token it refuses.
      HF_TOKEN,
      HF_INFERENCE_BASE_URL: fake.baseUrl,
      CHAT_UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS),
      CHAT_MAX_STREAMS_PER_USER: String(MAX_STREAMS),
      // Open to guests and to any model: the protocol tests chat as guests with the fake's models. The limits
      // are tested on servers of their own below ('costs and quotas').
      CHAT_PROVIDERS_FOR_GUESTS: 'true',
      OPENAI_MODELS: '*',
      HF_MODELS: '*',
    }),
    database: db.database,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  guest = chatClient(base, await guestCookie(base));
});
afterAll(async () => {
  await app?.close();
  await db?.cleanup();
  await fake?.stop();
});
beforeEach(() => fake.reset());

const hello: ChatInput = {
  provider: 'openai',
  model: 'gpt-test',
  messages: [{ role: 'user', content: 'hello there' }],
};

async function accountClient(username: string): Promise<{ client: ChatClient; userId: string }> {
  const user = await db.database.prisma.user.create({
    data: { kind: 'ACCOUNT', username, displayName: username },
    select: { id: true },
  });
  const { token } = await createSession(db.database.prisma, user.id, sessionPolicy(14, 90));
  return { client: chatClient(base, `mesh_session=${token}`), userId: user.id };
}

function failure(error: unknown) {
  expect(error).toBeInstanceOf(TRPCClientError);
  const data = (error as TRPCClientError<AppRouter>).data;
  return {
    message: (error as Error).message,
    code: data?.code,
    httpStatus: data?.httpStatus,
    provider: data?.providerError,
    zodIssues: data?.zodIssues,
  };
}

describe('chat.stream against an OpenAI-compatible provider', () => {
  it('streams the answer as text deltas, then a done event with finish reason, usage and timings', async () => {
    const { deltas, done, error } = await streamChat(guest, {
      ...hello,
      sampling: { temperature: 0.5, topP: 0.9, maxTokens: 64, seed: 3 },
    });
    expect(error).toBeNull();
    expect(deltas.join('')).toBe('Echo: hello there');
    expect(deltas).toEqual(tokenize('Echo: hello there'));
    expect(done).toMatchObject({
      type: 'done',
      finishReason: 'stop',
      model: 'gpt-test',
      usage: { promptTokens: 10, completionTokens: deltas.length },
    });
    expect(done?.timings.ttftMs).toBeGreaterThanOrEqual(0);
    expect(done?.timings.totalMs).toBeGreaterThanOrEqual(done?.timings.ttftMs ?? 0);

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(request?.body).toMatchObject({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'hello there' }],
      stream: true,
      temperature: 0.5,
      top_p: 0.9,
      max_tokens: 64,
      seed: 3,
    });
    expect(request).toMatchObject({ aborted: false, completed: true });
  });

  it('streams a conversation near the input caps: the GET URL of the subscription holds it', async () => {
    // Non-ASCII text percent-encodes to up to 9 bytes a character; Node's default 16 KiB header cap refused 20,000.
    const long = 'é'.repeat(29_000);
    const messages: ChatInput['messages'] = [
      { role: 'user', content: long },
      { role: 'assistant', content: long },
      { role: 'user', content: long },
      { role: 'assistant', content: long },
      { role: 'user', content: 'hello there' },
    ];
    const { deltas, error } = await streamChat(guest, { ...hello, messages });
    expect(error).toBeNull();
    expect(deltas.join('')).toBe('Echo: hello there');
    expect(
      (fake.requests[0]?.body as { messages: { content: string }[] }).messages.map((m) => m.content.length),
    ).toEqual([29_000, 29_000, 29_000, 29_000, 11]);
  });

  it('stops at max tokens with finish reason length', async () => {
    const { deltas, done, error } = await streamChat(guest, { ...hello, sampling: { maxTokens: 2 } });
    expect(error).toBeNull();
    expect(deltas).toEqual(tokenize('Echo: hello there').slice(0, 2));
    expect(done?.finishReason).toBe('length');
  });

  it('reassembles events and multi-byte characters split at odd byte boundaries', async () => {
    fake.fault = { kind: 'split' };
    const text = 'Ünïcødé — ✓ 世界 🎉 done';
    fake.reply = () => text;
    const { deltas, done, error } = await streamChat(guest, hello);
    expect(error).toBeNull();
    expect(deltas.join('')).toBe(text);
    expect(done?.finishReason).toBe('stop');
  });

  it('takes a one-piece JSON completion from a server that ignores stream: true', async () => {
    fake.fault = { kind: 'json' };
    const { deltas, done, error } = await streamChat(guest, hello);
    expect(error).toBeNull();
    expect(deltas).toEqual(['Echo: hello there']);
    expect(done?.usage?.completionTokens).toBe(tokenize('Echo: hello there').length);
  });

  it('fails with BAD_UPSTREAM_RESPONSE on a malformed chunk, after the text that came before it', async () => {
    fake.fault = { kind: 'malformed', afterChunks: 2 };
    const { deltas, done, error } = await streamChat(guest, hello);
    expect(deltas).toEqual(tokenize('Echo: hello there').slice(0, 2));
    expect(done).toBeNull();
    expect(failure(error)).toMatchObject({
      code: 'PRECONDITION_FAILED',
      provider: { code: 'BAD_UPSTREAM_RESPONSE', retryAfterSeconds: null },
    });
  });

  it('fails with UPSTREAM_ERROR when the provider reports an error mid-stream, with its message sanitized', async () => {
    fake.fault = { kind: 'stream-error', afterChunks: 1, message: `overloaded; key ${fake.apiKey}` };
    const { error } = await streamChat(guest, hello);
    const { provider, message } = failure(error);
    expect(provider?.code).toBe('UPSTREAM_ERROR');
    expect(message).toContain('overloaded');
    expect(message).not.toContain(fake.apiKey);
  });

  it('maps a refused key (401) to INVALID_KEY and never shows the key the provider echoed', async () => {
    const { error } = await streamChat(guest, {
      provider: 'huggingface',
      model: 'meta-llama/Llama-3.2-1B-Instruct',
      messages: hello.messages,
    });
    expect(fake.requests[0]?.authorization).toBe(`Bearer ${HF_TOKEN}`);
    const result = failure(error);
    expect(result).toMatchObject({ code: 'PRECONDITION_FAILED', provider: { code: 'INVALID_KEY' } });
    expect(result.message).toMatch(/Hugging Face refused the server's API key/);
    expect(JSON.stringify({ ...result, error })).not.toContain(HF_TOKEN);
    expect(JSON.stringify({ ...result, error })).not.toContain(HF_TOKEN.slice(3, 15));
  });

  it('maps 429 to RATE_LIMITED with the seconds from Retry-After', async () => {
    fake.fault = { kind: 'status', status: 429, retryAfter: '7', message: 'Rate limit reached for requests' };
    expect(failure((await streamChat(guest, hello)).error)).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      provider: { code: 'RATE_LIMITED', retryAfterSeconds: 7 },
      message: 'OpenAI is rate limiting requests; retry in 7 s',
    });
  });

  it('maps 500 to UPSTREAM_ERROR without passing on the upstream body', async () => {
    fake.fault = { kind: 'status', status: 500, message: 'Traceback: at /srv/inference/worker.py line 12' };
    const result = failure((await streamChat(guest, hello)).error);
    expect(result).toMatchObject({ provider: { code: 'UPSTREAM_ERROR' }, message: 'OpenAI failed (HTTP 500)' });
    // One request: the failure must not make the SSE client reconnect and send the prompt again.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(fake.requests).toHaveLength(1);
  });

  it('maps an unknown model (404) to MODEL_NOT_FOUND and other 4xx to UPSTREAM_REJECTED', async () => {
    const missing = failure((await streamChat(guest, { ...hello, model: 'gpt-missing' })).error);
    expect(missing).toMatchObject({ code: 'NOT_FOUND', provider: { code: 'MODEL_NOT_FOUND' } });
    expect(missing.message).toContain('gpt-missing');

    fake.fault = { kind: 'status', status: 400, message: "This model's maximum context length is 4096 tokens" };
    const rejected = failure((await streamChat(guest, hello)).error);
    expect(rejected).toMatchObject({ code: 'UNPROCESSABLE_CONTENT', provider: { code: 'UPSTREAM_REJECTED' } });
    expect(rejected.message).toBe(
      "OpenAI refused the request (HTTP 400): This model's maximum context length is 4096 tokens",
    );
  });

  it('fails with UPSTREAM_TIMEOUT when the provider stalls, before its headers or between chunks, and hangs up on it', async () => {
    fake.fault = { kind: 'stall', afterChunks: 0 };
    const before = await streamChat(guest, hello);
    expect(before.deltas).toEqual([]);
    expect(failure(before.error)).toMatchObject({ code: 'TIMEOUT', provider: { code: 'UPSTREAM_TIMEOUT' } });

    fake.fault = { kind: 'stall', afterChunks: 2 };
    const started = Date.now();
    const between = await streamChat(guest, hello);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(between.deltas).toEqual(tokenize('Echo: hello there').slice(0, 2));
    expect(failure(between.error).provider?.code).toBe('UPSTREAM_TIMEOUT');
    await vi.waitFor(() => expect(fake.requests.map((r) => r.aborted)).toEqual([true, true]));
  });

  it('aborts the upstream request when the client unsubscribes mid-answer', async () => {
    fake.fault = { kind: 'slow', delayMs: 50 };
    fake.reply = () => 'word '.repeat(200);
    const running = openStream(guest, hello);
    await running.firstDelta;
    collectGarbage();
    running.unsubscribe();
    await vi.waitFor(() => expect(fake.requests[0]).toMatchObject({ aborted: true, completed: false }), {
      timeout: 8000,
    });
    // It stopped well before the 200 slow chunks (10 s) could have been sent.
    expect(running.deltas.length).toBeLessThan(100);
  });

  it('aborts the upstream request when the client goes away while the provider is silent', async () => {
    // A server whose upstream timeout cannot fire during the test: only the client's leaving can end the request.
    const patient = await buildApp({
      env: testEnv({
        OPENAI_API_KEY: fake.apiKey,
        OPENAI_BASE_URL: fake.baseUrl,
        OPENAI_MODELS: 'gpt-test',
        CHAT_PROVIDERS_FOR_GUESTS: 'true',
        CHAT_UPSTREAM_TIMEOUT_MS: '600000',
      }),
      database: db.database,
    });
    try {
      const url = await patient.listen({ host: '127.0.0.1', port: 0 });
      fake.fault = { kind: 'stall', afterChunks: 1 };
      const running = openStream(chatClient(url, await guestCookie(url)), hello);
      await running.firstDelta;
      collectGarbage();
      running.unsubscribe();
      await vi.waitFor(() => expect(fake.requests[0]).toMatchObject({ aborted: true, completed: false }), {
        timeout: 8000,
      });
    } finally {
      // The test client (undici under eventsource) leaves its aborted SSE socket open for seconds; the server
      // has already seen the abort, so close it rather than wait.
      patient.server.closeAllConnections();
      await patient.close();
    }
  });

  it('refuses a chat over the per-user stream cap, while other users and freed slots still chat', async () => {
    fake.fault = { kind: 'slow', delayMs: 100 };
    fake.reply = () => 'word '.repeat(200);
    const held = [openStream(guest, hello), openStream(guest, hello)];
    await Promise.all(held.map((stream) => stream.firstDelta));

    const over = failure((await streamChat(guest, { provider: 'stub', messages: hello.messages })).error);
    expect(over).toMatchObject({ code: 'TOO_MANY_REQUESTS', provider: { code: 'TOO_MANY_STREAMS' } });
    expect(over.message).toMatch(new RegExp(`At most ${MAX_STREAMS} chats`));
    const overSend = failure(
      await guest.chat.send.mutate({ provider: 'stub', messages: hello.messages }).catch((e: unknown) => e),
    );
    expect(overSend).toMatchObject({ httpStatus: 429, provider: { code: 'TOO_MANY_STREAMS' } });

    const other = chatClient(base, await guestCookie(base));
    expect((await streamChat(other, { provider: 'stub', messages: hello.messages })).error).toBeNull();

    for (const stream of held) stream.unsubscribe();
    await vi.waitFor(() => expect(fake.requests.filter((r) => r.aborted)).toHaveLength(2), { timeout: 3000 });
    await vi.waitFor(
      async () => expect((await streamChat(guest, { provider: 'stub', messages: hello.messages })).error).toBeNull(),
      {
        timeout: 3000,
      },
    );
  });

  it('says which provider is not configured instead of calling it', async () => {
    const result = failure((await streamChat(guest, { provider: 'openrouter', messages: hello.messages })).error);
    expect(result).toMatchObject({ code: 'PRECONDITION_FAILED', provider: { code: 'PROVIDER_NOT_CONFIGURED' } });
    expect(result.message).toBe('OpenRouter is not configured on this server (OPENROUTER_API_KEY is unset)');
    expect(fake.requests).toHaveLength(0);
  });

  it('needs a session', async () => {
    const anonymous = chatClient(base, '');
    expect(failure((await streamChat(anonymous, hello)).error).code).toBe('UNAUTHORIZED');
    expect(failure(await anonymous.chat.send.mutate(hello).catch((e: unknown) => e)).httpStatus).toBe(401);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('chat.send', () => {
  it('returns the whole answer with its finish reason and usage', async () => {
    const answer = await guest.chat.send.mutate(hello);
    expect(answer).toMatchObject({ text: 'Echo: hello there', finishReason: 'stop', model: 'gpt-test' });
    expect(answer.usage?.completionTokens).toBe(tokenize('Echo: hello there').length);
  });

  it('answers provider failures with the HTTP status and code of the failure', async () => {
    fake.fault = { kind: 'status', status: 429, retryAfter: '12' };
    const error = await guest.chat.send.mutate(hello).catch((e: unknown) => e);
    expect(failure(error)).toMatchObject({
      httpStatus: 429,
      provider: { code: 'RATE_LIMITED', retryAfterSeconds: 12 },
    });
  });
});

describe('chat input caps', () => {
  const bad = async (input: unknown) =>
    failure(await guest.chat.send.mutate(input as ChatInput).catch((e: unknown) => e));
  const issues = async (input: unknown) => {
    const result = await bad(input);
    expect(result.code).toBe('BAD_REQUEST');
    return result.zodIssues;
  };
  const user = (content: string) => ({ role: 'user', content });

  it('refuses oversized or malformed input with the zod path and a clear message, before any upstream request', async () => {
    expect(await issues({ ...hello, messages: Array.from({ length: 101 }, () => user('x')) })).toEqual([
      { path: ['messages'], message: 'At most 100 messages per request' },
    ]);
    expect(await issues({ ...hello, messages: [user('x'.repeat(32_001))] })).toEqual([
      { path: ['messages', '0', 'content'], message: 'A message is at most 32000 characters' },
    ]);
    expect(await issues({ ...hello, messages: Array.from({ length: 4 }, () => user('x'.repeat(31_000))) })).toEqual([
      { path: ['messages'], message: 'Messages are at most 120000 characters in all' },
    ]);
    expect(await issues({ ...hello, sampling: { maxTokens: 100_000 } })).toEqual([
      { path: ['sampling', 'maxTokens'], message: 'Max tokens is at most 8192' },
    ]);
    expect(await issues({ ...hello, messages: [] })).toEqual([
      { path: ['messages'], message: 'Send at least one message' },
    ]);
    expect(await issues({ ...hello, model: 'x'.repeat(129) })).toEqual([
      { path: ['model'], message: 'Model is at most 128 characters' },
    ]);
    expect((await bad({ ...hello, provider: 'anthropic' })).code).toBe('BAD_REQUEST');
    expect((await bad({ ...hello, messages: [{ role: 'tool', content: 'x' }] })).code).toBe('BAD_REQUEST');
    expect((await bad({ ...hello, apiKey: 'sk-mine' })).code).toBe('BAD_REQUEST');
    expect(fake.requests).toHaveLength(0);
  });

  it('refuses bad input on the SSE subscription the same way', async () => {
    const { error } = await streamChat(guest, { ...hello, sampling: { temperature: 3 } });
    const data = (error as TRPCClientError<AppRouter>).data;
    expect(data?.code).toBe('BAD_REQUEST');
    expect(data?.zodIssues).toEqual([{ path: ['sampling', 'temperature'], message: 'Temperature is at most 2' }]);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('chat.providers', () => {
  it('lists every provider with whether it is configured, a default model and its allowed models, never a key or URL', async () => {
    const providers = await chatClient(base, '').chat.providers.query();
    expect(providers.map((p) => [p.id, p.configured])).toEqual([
      ['stub', true],
      ['openai', true],
      ['openrouter', false],
      ['huggingface', true],
    ]);
    for (const provider of providers) {
      expect(Object.keys(provider).sort()).toEqual([
        'configured',
        'defaultModel',
        'id',
        'label',
        'models',
        'openToGuests',
        'stub',
      ]);
      expect(provider.defaultModel.length).toBeGreaterThan(0);
      // The allow-list a person may choose from (null: any model the provider has).
      expect(provider.models === null || provider.models.every((m) => typeof m === 'string')).toBe(true);
    }
    expect(providers.find((p) => p.id === 'stub')).toMatchObject({ stub: true, label: expect.stringMatching(/stub/i) });
    const text = JSON.stringify(providers);
    for (const secret of [fake.apiKey, HF_TOKEN, '127.0.0.1']) expect(text).not.toContain(secret);
  });
});

describe('the stub provider', () => {
  const input: ChatInput = { provider: 'stub', messages: [{ role: 'user', content: 'Tell me about meshes' }] };

  it('streams the same labelled text for the same input, different text for different input, with no key', async () => {
    const first = await streamChat(guest, input);
    const second = await streamChat(guest, input);
    expect(first.error).toBeNull();
    expect(first.deltas.length).toBeGreaterThan(5);
    expect(second.deltas).toEqual(first.deltas);
    const text = first.deltas.join('');
    expect(text).toMatch(/^\[stub [0-9a-f]{8}\] This is the stub provider: no language model ran\./);
    expect(text).toContain('"Tell me about meshes"');
    expect(first.done).toMatchObject({
      finishReason: 'stop',
      model: 'stub-echo',
      usage: { promptTokens: 4, completionTokens: first.deltas.length },
    });

    const other = await streamChat(guest, { ...input, messages: [{ role: 'user', content: 'Something else' }] });
    expect(other.deltas.join('')).not.toBe(text);
    const seeded = await streamChat(guest, { ...input, sampling: { seed: 9 } });
    expect(seeded.deltas.join('')).not.toBe(text);
    expect(fake.requests).toHaveLength(0);
  });

  it('honours max tokens', async () => {
    const { deltas, done } = await streamChat(guest, { ...input, sampling: { maxTokens: 3 } });
    expect(deltas).toHaveLength(3);
    expect(done?.finishReason).toBe('length');
  });
});

describe('saved conversations', () => {
  it('chat.stream and chat.send save nothing, for an account as for a guest', async () => {
    const { client, userId } = await accountClient('ada');
    const streamed = await streamChat(client, {
      ...hello,
      messages: [{ role: 'system', content: 'Be brief.' }, ...hello.messages],
    });
    expect(streamed.error).toBeNull();
    expect(streamed.done).not.toHaveProperty('conversationId');
    const sent = await client.chat.send.mutate(hello);
    expect(sent.text).toBe('Echo: hello there');
    expect(sent).not.toHaveProperty('conversationId');
    expect(await db.database.prisma.conversation.count({ where: { userId } })).toBe(0);
    // A GET cannot be told to write into a conversation either.
    const continued = await client.chat.send
      .mutate({ ...hello, conversationId: crypto.randomUUID() } as ChatInput)
      .catch((e: unknown) => e);
    expect(failure(continued).code).toBe('BAD_REQUEST');

    const cookie = await guestCookie(base);
    const session = await db.database.prisma.session.findUnique({
      where: { id: cookie.split('=')[1]?.split('.')[0] ?? '' },
      select: { userId: true },
    });
    const guestClient = chatClient(base, cookie);
    expect((await streamChat(guestClient, hello)).error).toBeNull();
    expect(await db.database.prisma.conversation.count({ where: { userId: session?.userId ?? '' } })).toBe(0);
  });

  it('conversation.append saves a finished cloud turn, and later turns append to the same conversation', async () => {
    const { client, userId } = await accountClient('grace');
    const prompt: ChatInput['messages'] = [{ role: 'system', content: 'Be brief.' }, ...hello.messages];
    const first = await streamChat(client, { ...hello, messages: prompt });
    const answer = {
      content: first.deltas.join(''),
      route: 'CLOUD' as const,
      provider: 'openai',
      modelId: first.done?.model,
      tokensOut: first.done?.usage?.completionTokens,
    };
    const { id } = await client.conversation.append.mutate({ messages: prompt, answer });

    const turn = [
      ...prompt,
      { role: 'assistant' as const, content: answer.content },
      { role: 'user' as const, content: 'and again' },
    ];
    const second = await client.chat.send.mutate({ ...hello, messages: turn });
    const again = await client.conversation.append.mutate({
      conversationId: id,
      messages: turn,
      answer: {
        content: second.text,
        route: 'CLOUD',
        provider: 'openai',
        modelId: second.model,
        tokensOut: second.usage?.completionTokens,
      },
    });
    expect(again.id).toBe(id);

    const conversations = await db.database.prisma.conversation.findMany({
      where: { userId },
      select: {
        id: true,
        title: true,
        messages: {
          orderBy: { createdAt: 'asc' },
          select: { role: true, content: true, route: true, provider: true, modelId: true, tokensOut: true },
        },
      },
    });
    expect(conversations).toHaveLength(1);
    expect(conversations[0]?.title).toBe('hello there');
    expect(conversations[0]?.messages).toEqual([
      { role: 'SYSTEM', content: 'Be brief.', route: null, provider: null, modelId: null, tokensOut: null },
      { role: 'USER', content: 'hello there', route: null, provider: null, modelId: null, tokensOut: null },
      {
        role: 'ASSISTANT',
        content: 'Echo: hello there',
        route: 'CLOUD',
        provider: 'openai',
        modelId: 'gpt-test',
        tokensOut: tokenize('Echo: hello there').length,
      },
      { role: 'USER', content: 'and again', route: null, provider: null, modelId: null, tokensOut: null },
      {
        role: 'ASSISTANT',
        content: 'Echo: and again',
        route: 'CLOUD',
        provider: 'openai',
        modelId: 'gpt-test',
        tokensOut: tokenize('Echo: and again').length,
      },
    ]);
  });
});
