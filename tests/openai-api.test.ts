// The OpenAI-compatible API (/v1) driven by the official `openai` client against a listening server: models,
// chat completions whole and streamed on the stub and on a fake OpenAI upstream (a real HTTP server), and every
// refusal in OpenAI's error shape, as the client's own error classes see it.
import { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeOpenAI, tokenize } from '../scripts/fake-openai.ts';
import { buildApp } from '../src/server/app.ts';
import { stubReply } from '../src/server/providers/stub.ts';
import { createApiKey, revokeApiKey } from '../src/server/services/api-keys.ts';
import { createSession, sessionPolicy } from '../src/server/services/session.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

let fake: FakeOpenAI;
let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let key: string;
let client: OpenAI;
const log: string[] = [];

async function accountKey(username: string): Promise<{ key: string; id: string; userId: string }> {
  const user = await db.database.prisma.user.create({
    data: { kind: 'ACCOUNT', username, displayName: username },
    select: { id: true },
  });
  const created = await createApiKey(db.database.prisma, user.id, `${username}'s key`);
  return { key: created.key, id: created.info.id, userId: user.id };
}

const openai = (apiKey: string, url = base) => new OpenAI({ apiKey, baseURL: `${url}/v1`, maxRetries: 0 });

/** The client's error, after checking it is of the class OpenAI's own API would have raised. */
async function refusal<T extends InstanceType<typeof OpenAI.APIError>>(
  promise: Promise<unknown>,
  kind: abstract new (...args: never[]) => T,
): Promise<T> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(kind);
  return error as T;
}

beforeAll(async () => {
  fake = new FakeOpenAI();
  await fake.start();
  db = await openTestDatabase('pglite');
  app = await buildApp({
    env: testEnv({
      OPENAI_API_KEY: fake.apiKey,
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODELS: 'gpt-test,gpt-missing',
      LOG_LEVEL: 'debug',
    }),
    database: db.database,
    logStream: { write: (line) => void log.push(line) },
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  ({ key } = await accountKey('apiuser'));
  client = openai(key);
});
afterAll(async () => {
  await app?.close();
  await db?.cleanup();
  await fake?.stop();
});
beforeEach(() => fake.reset());

const hello = [{ role: 'user' as const, content: 'hello there' }];

describe('GET /v1/models', () => {
  it('lists the stub and each configured provider’s allowed models, with who owns them', async () => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models.map((m) => [m.id, m.object, m.owned_by])).toEqual([
      ['stub', 'model', 'stub'],
      ['openai/gpt-test', 'model', 'openai'],
      ['openai/gpt-missing', 'model', 'openai'],
    ]);
    expect(models.every((m) => Number.isInteger(m.created) && m.created > 0)).toBe(true);
  });

  it('needs a key', async () => {
    const error = await refusal(openai('').models.list(), OpenAI.AuthenticationError);
    expect(error).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'authentication_error' });
  });
});

describe('POST /v1/chat/completions on the stub', () => {
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Tell me about meshes' },
  ];
  const expected = stubReply({ model: 'stub-echo', messages, sampling: { seed: 5 } });

  it('answers whole, in OpenAI’s shape', async () => {
    const answer = await client.chat.completions.create({ model: 'stub', messages, seed: 5 });
    expect(answer).toMatchObject({
      object: 'chat.completion',
      model: 'stub',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: expected } }],
    });
    expect(answer.id).toMatch(/^chatcmpl-/);
    const words = expected.match(/\S+\s*/g) ?? [];
    expect(answer.usage).toEqual({ prompt_tokens: 6, completion_tokens: words.length, total_tokens: 6 + words.length });
  });

  it('streams chunks: the role first, then the text, a finish reason, and [DONE]', async () => {
    const stream = await client.chat.completions.create({ model: 'stub', messages, seed: 5, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '' });
    expect(
      chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'stub' && c.id === chunks[0]?.id),
    ).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(expected);
    expect(chunks.at(-1)?.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(chunks.slice(0, -1).every((c) => c.choices[0]?.finish_reason === null)).toBe(true);
    expect(chunks.every((c) => !('usage' in c))).toBe(true);

    // On the wire: nothing but `data:` events, ending in [DONE].
    const raw = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stub', messages, seed: 5, stream: true }),
    });
    expect(raw.headers?.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const text = await raw.text();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(
      text
        .split('\n\n')
        .filter(Boolean)
        .every((event) => event.startsWith('data: ')),
    ).toBe(true);
  });

  it('sends the role and the first text in one write, so the first token leaves with the response head', async () => {
    // Written apart, the text waited for the event loop's next turns, behind whatever else the server had to do.
    const original = ServerResponse.prototype.write as (this: ServerResponse, ...args: unknown[]) => boolean;
    const writes: string[] = [];
    const spy = vi.spyOn(ServerResponse.prototype, 'write').mockImplementation(function (
      this: ServerResponse,
      ...args: unknown[]
    ) {
      const chunk = args[0];
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString() : '';
      if (text.includes('chat.completion.chunk')) writes.push(text);
      return original.apply(this, args);
    } as ServerResponse['write']);
    try {
      const stream = await client.chat.completions.create({ model: 'stub', messages, seed: 5, stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      expect(text).toBe(expected);
    } finally {
      spy.mockRestore();
    }
    const events = (writes[0] ?? '')
      .split('\n\n')
      .filter(Boolean)
      .map((event) => JSON.parse(event.slice('data: '.length)) as OpenAI.ChatCompletionChunk);
    expect(events.map((event) => event.choices[0]?.delta)).toEqual([
      { role: 'assistant', content: '' },
      { content: expect.stringMatching(/.+/) as unknown },
    ]);
    expect(expected.startsWith(events[1]?.choices[0]?.delta.content ?? '-')).toBe(true);
  });

  it('puts usage on a last chunk with no choices when stream_options.include_usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'stub',
      messages,
      seed: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1);
    const words = expected.match(/\S+\s*/g) ?? [];
    expect(last).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 6, completion_tokens: words.length, total_tokens: 6 + words.length },
    });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('honours max_tokens (finish_reason length) and stop sequences', async () => {
    const short = await client.chat.completions.create({ model: 'stub', messages, seed: 5, max_tokens: 3 });
    expect(short.choices[0]).toMatchObject({
      finish_reason: 'length',
      message: { content: (expected.match(/\S+\s*/g) ?? []).slice(0, 3).join('') },
    });
    const newer = await client.chat.completions.create({ model: 'stub', messages, seed: 5, max_completion_tokens: 2 });
    expect(newer.usage?.completion_tokens).toBe(2);
    const stopped = await client.chat.completions.create({ model: 'stub', messages, seed: 5, stop: 'stub provider' });
    expect(stopped.choices[0]).toMatchObject({
      finish_reason: 'stop',
      message: { content: expected.slice(0, expected.indexOf('stub provider')) },
    });
  });

  it('ignores fields it does not know, and takes text content parts and the developer role', async () => {
    const answer = await client.chat.completions.create({
      model: 'stub',
      seed: 5,
      messages: [
        { role: 'developer', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Tell me ' },
            { type: 'text', text: 'about meshes' },
          ],
        },
      ],
      user: 'user-1234',
      logit_bias: {},
      // A field OpenAI may add tomorrow.
      ...({ some_future_field: { x: 1 } } as object),
    });
    expect(answer.choices[0]?.message.content).toBe(expected);
  });
});

describe('POST /v1/chat/completions on a cloud provider', () => {
  it('answers whole through the provider, which sees the server’s key and the parameters, never the caller’s key', async () => {
    const answer = await client.chat.completions.create({
      model: 'openai/gpt-test',
      messages: hello,
      temperature: 0.5,
      top_p: 0.9,
      max_tokens: 64,
      seed: 3,
      stop: ['\n\n'],
    });
    expect(answer).toMatchObject({
      model: 'openai/gpt-test',
      choices: [{ finish_reason: 'stop', message: { content: 'Echo: hello there' } }],
    });
    expect(answer.usage).toEqual({
      prompt_tokens: 10,
      completion_tokens: tokenize('Echo: hello there').length,
      total_tokens: 10 + tokenize('Echo: hello there').length,
    });
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(fake.requests[0]?.body).toMatchObject({
      model: 'gpt-test',
      messages: hello,
      stream: true,
      temperature: 0.5,
      top_p: 0.9,
      max_tokens: 64,
      seed: 3,
      stop: ['\n\n'],
    });
  });

  it('streams the provider’s tokens as they come, with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'openai/gpt-test',
      messages: hello,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.slice(1, -2).map((c) => c.choices[0]?.delta.content)).toEqual(tokenize('Echo: hello there'));
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(tokenize('Echo: hello there').length);
  });

  it('answers a provider failure before the first token with its status, and one after it with an error event', async () => {
    fake.fault = { kind: 'status', status: 500, message: 'Traceback at /srv/worker.py' };
    const failed = await refusal(
      client.chat.completions.create({ model: 'openai/gpt-test', messages: hello }),
      OpenAI.InternalServerError,
    );
    expect(failed).toMatchObject({
      status: 502,
      code: 'upstream_error',
      message: expect.stringContaining('OpenAI failed (HTTP 500)'),
    });

    fake.fault = { kind: 'status', status: 429, retryAfter: '7' };
    const limited = await refusal(
      client.chat.completions.create({ model: 'openai/gpt-test', messages: hello }),
      OpenAI.RateLimitError,
    );
    expect(limited.headers?.get('retry-after')).toBe('7');

    fake.fault = { kind: 'stream-error', afterChunks: 2, message: 'overloaded' };
    const stream = await client.chat.completions.create({ model: 'openai/gpt-test', messages: hello, stream: true });
    const texts: string[] = [];
    const midway = await (async () => {
      for await (const chunk of stream) texts.push(chunk.choices[0]?.delta.content ?? '');
    })().then(
      () => null,
      (e: unknown) => e,
    );
    expect(midway).toBeInstanceOf(OpenAI.APIError);
    expect((midway as InstanceType<typeof OpenAI.APIError>).message).toContain('OpenAI failed mid-answer: overloaded');
    expect(texts.join('')).toBe(tokenize('Echo: hello there').slice(0, 2).join(''));
  });

  it('aborts the upstream request when the client aborts mid-stream', async () => {
    fake.fault = { kind: 'slow', delayMs: 50 };
    fake.reply = () => 'word '.repeat(200);
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'openai/gpt-test', messages: hello, stream: true },
      { signal: controller.signal },
    );
    let received = 0;
    const ended = await (async () => {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content) received++;
        if (received === 2) controller.abort();
      }
    })().then(
      () => null,
      (e: unknown) => e,
    );
    // The client's stream ends quietly on its own abort, well before the 200 slow chunks (10 s) could arrive.
    expect(ended).toBeNull();
    expect(received).toBeLessThan(100);
    await vi.waitFor(() => expect(fake.requests[0]).toMatchObject({ aborted: true, completed: false }), {
      timeout: 8000,
    });
  });
});

describe('a client that leaves while waiting for a whole answer', () => {
  it('aborts the upstream request', async () => {
    fake.fault = { kind: 'slow', delayMs: 50 };
    fake.reply = () => 'word '.repeat(200);
    const controller = new AbortController();
    const pending = client.chat.completions.create(
      { model: 'openai/gpt-test', messages: hello },
      { signal: controller.signal },
    );
    await vi.waitFor(() => expect(fake.requests).toHaveLength(1));
    controller.abort();
    await refusal(pending, OpenAI.APIUserAbortError);
    await vi.waitFor(() => expect(fake.requests[0]).toMatchObject({ aborted: true, completed: false }), {
      timeout: 8000,
    });
  });
});

describe('refusals in OpenAI’s error shape', () => {
  it('refuses an unknown key, a revoked key and a malformed header with 401 invalid_api_key', async () => {
    const unknown = await refusal(
      openai(`mnl_${'A'.repeat(43)}`).chat.completions.create({ model: 'stub', messages: hello }),
      OpenAI.AuthenticationError,
    );
    expect(unknown).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'authentication_error', param: null });
    expect(unknown.message).toContain('Incorrect API key');

    const revoked = await accountKey('revoker');
    expect((await openai(revoked.key).chat.completions.create({ model: 'stub', messages: hello })).object).toBe(
      'chat.completion',
    );
    await revokeApiKey(db.database.prisma, revoked.userId, revoked.id);
    const after = await refusal(
      openai(revoked.key).chat.completions.create({ model: 'stub', messages: hello }),
      OpenAI.AuthenticationError,
    );
    expect(after.code).toBe('invalid_api_key');
    expect(after.message).not.toContain(revoked.key.slice(4));

    // An account's session cookie is no key: /v1 ignores cookies.
    const { token } = await createSession(db.database.prisma, revoked.userId, sessionPolicy(14, 90));
    const cookie = `mesh_session=${token}`;
    const none = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: '{}',
    });
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({
      error: {
        message: expect.stringContaining('No API key'),
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
    expect(fake.requests).toHaveLength(0);
  });

  it('answers 404 model_not_found for a model nobody serves, outside an allow-list, or of an unconfigured provider', async () => {
    for (const model of [
      'gpt-5-imaginary',
      'openai/gpt-4o',
      'openrouter/meta-llama/llama-3.1-8b-instruct',
      'huggingface/meta-llama/Llama-3.1-8B-Instruct:novita',
    ]) {
      const error = await refusal(client.chat.completions.create({ model, messages: hello }), OpenAI.NotFoundError);
      expect(error).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
      expect(error.message).toContain(model);
    }
    expect(fake.requests).toHaveLength(0);
    // A model the allow-list has but the upstream does not: the upstream's 404, as OpenAI's.
    const upstream = await refusal(
      client.chat.completions.create({ model: 'openai/gpt-missing', messages: hello }),
      OpenAI.NotFoundError,
    );
    expect(upstream.code).toBe('model_not_found');
  });

  it('answers 503 for a catalogue model no peer shares (tests/openai-mesh.test.ts covers serving)', async () => {
    const entry = app.models.manifest[0];
    expect(entry).toBeDefined();
    const error = await refusal(
      client.chat.completions.create({ model: entry?.id ?? '', messages: hello }),
      OpenAI.InternalServerError,
    );
    expect(error).toMatchObject({ status: 503, code: 'unavailable' });
    expect(error.message).toMatch(/No peer in room global shares/);
  });

  it('refuses n other than 1 and malformed parameters with 400 and the parameter', async () => {
    const n = await refusal(
      client.chat.completions.create({ model: 'stub', messages: hello, n: 2 }),
      OpenAI.BadRequestError,
    );
    expect(n).toMatchObject({
      status: 400,
      type: 'invalid_request_error',
      param: 'n',
      message: expect.stringContaining('Only n: 1 is supported'),
    });
    expect((await client.chat.completions.create({ model: 'stub', messages: hello, n: 1 })).choices).toHaveLength(1);

    const bad = async (body: object) =>
      refusal(
        client.chat.completions.create(body as OpenAI.ChatCompletionCreateParamsNonStreaming),
        OpenAI.BadRequestError,
      );
    expect((await bad({ model: 'stub', messages: hello, temperature: 'hot' })).param).toBe('temperature');
    expect((await bad({ model: 'stub', messages: hello, temperature: 3 })).message).toContain(
      'Temperature is at most 2',
    );
    expect((await bad({ model: 'stub', messages: hello, max_tokens: 100_000 })).param).toBe('max_tokens');
    expect((await bad({ model: 'stub', messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] })).param).toBe(
      'messages.0.role',
    );
    expect((await bad({ model: 'stub', messages: [] })).message).toContain('Send at least one message');
    expect(
      (
        await bad({
          model: 'stub',
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }],
        })
      ).param,
    ).toBe('messages.0.content');
    expect((await bad({ messages: hello })).param).toBe('model');

    const notJson = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: '{"model":',
    });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error', param: null } });
  });

  it('answers unknown /v1 URLs and cross-site calls in the same shape', async () => {
    const missing = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: {
        message: expect.stringContaining('Unknown request URL: POST /v1/completions'),
        type: 'invalid_request_error',
        param: null,
        code: 'unknown_url',
      },
    });
    const crossSite = await fetch(`${base}/v1/models`, {
      headers: { authorization: `Bearer ${key}`, 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'empty' },
    });
    expect(crossSite.status).toBe(403);
    expect(await crossSite.json()).toMatchObject({ error: { type: 'permission_error', code: 'cross_site' } });
  });

  it('counts each key’s requests against its account’s chat budget and daily provider tokens: 429 with retry-after', async () => {
    const limited = await buildApp({
      env: testEnv({
        OPENAI_API_KEY: fake.apiKey,
        OPENAI_BASE_URL: fake.baseUrl,
        OPENAI_MODELS: 'gpt-test',
        CHATS_PER_USER_PER_MINUTE: '3',
        CHAT_DAILY_TOKENS_PER_USER: '0',
      }),
      database: db.database,
    });
    try {
      const url = await limited.listen({ host: '127.0.0.1', port: 0 });
      const spender = await accountKey('spender');
      const api = openai(spender.key, url);
      expect((await api.chat.completions.create({ model: 'stub', messages: hello })).object).toBe('chat.completion');

      const tokens = await refusal(
        api.chat.completions.create({ model: 'openai/gpt-test', messages: hello }),
        OpenAI.RateLimitError,
      );
      expect(tokens).toMatchObject({
        status: 429,
        code: 'rate_limit_exceeded',
        message: expect.stringContaining("today's 0 cloud tokens"),
      });
      expect(Number(tokens.headers?.get('retry-after'))).toBeGreaterThan(0);
      expect(fake.requests).toHaveLength(0);

      expect((await api.chat.completions.create({ model: 'stub', messages: hello })).object).toBe('chat.completion');
      const chats = await refusal(
        api.chat.completions.create({ model: 'stub', messages: hello }),
        OpenAI.RateLimitError,
      );
      expect(chats).toMatchObject({
        status: 429,
        code: 'rate_limit_exceeded',
        message: expect.stringContaining('Too many chats'),
      });
      expect(Number(chats.headers?.get('retry-after'))).toBeGreaterThan(0);

      // The budget is the account's, not the key's: a second key of the same account is refused too.
      const second = await createApiKey(db.database.prisma, spender.userId, 'second');
      await refusal(
        openai(second.key, url).chat.completions.create({ model: 'stub', messages: hello }),
        OpenAI.RateLimitError,
      );
      // Another account still chats.
      expect(
        (
          await openai((await accountKey('bystander')).key, url).chat.completions.create({
            model: 'stub',
            messages: hello,
          })
        ).object,
      ).toBe('chat.completion');
    } finally {
      await limited.close();
    }
  });
});

describe('the per-address request ceiling', () => {
  it('refuses past RATE_LIMIT_MAX with 429 in OpenAI’s shape and a retry-after', async () => {
    const strict = await buildApp({ env: testEnv({ RATE_LIMIT_MAX: '3' }), database: db.database });
    try {
      const api = openai(key, await strict.listen({ host: '127.0.0.1', port: 0 }));
      for (let i = 0; i < 3; i++) await api.models.list();
      const error = await refusal(api.models.list(), OpenAI.RateLimitError);
      expect(error).toMatchObject({
        status: 429,
        type: 'rate_limit_error',
        code: 'rate_limit_exceeded',
        message: expect.stringContaining('retry in'),
      });
      expect(Number(error.headers?.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await strict.close();
    }
  });
});

describe('the server log', () => {
  it('names /v1 requests by route and never holds a key', async () => {
    await client.chat.completions.create({ model: 'stub', messages: hello });
    // One changed character.
    await refusal(
      openai(`${key.slice(0, -1)}${key.endsWith('x') ? 'y' : 'x'}`).models.list(),
      OpenAI.AuthenticationError,
    );
    const text = log.join('');
    expect(text).toContain('"url":"/v1/chat/completions"');
    expect(text).not.toContain(key.slice(4, 24));
    expect(text).not.toContain('mnl_');
    expect(text).not.toContain(fake.apiKey);
  });
});
