// A fake OpenAI-compatible API: a real HTTP server speaking the real protocol, with faults injected on demand.
// Used by the tests; never by the app.
//   POST /v1/chat/completions  stream: true  -> SSE `data: {chat.completion.chunk}` lines, then `data: [DONE]`
//                              stream: false -> one chat.completion JSON
//   errors                     {"error":{"message","type","code"}} with the status OpenAI uses
// It records every request: the Authorization header it saw, the body, and whether the client hung up first.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type FakeOpenAIFault =
  /** Write the SSE bytes in odd-sized slices (1, 2, 3, 5, 7, ... bytes), so events and UTF-8 split across reads. */
  | { kind: 'split' }
  /** After N content chunks, send a chunk that is not JSON. */
  | { kind: 'malformed'; afterChunks: number }
  /** Answer with this status and an OpenAI error body; `retryAfter` sets the Retry-After header. */
  | { kind: 'status'; status: number; message?: string; retryAfter?: string }
  /** After N content chunks (0: before the headers), send nothing more and keep the connection open. */
  | { kind: 'stall'; afterChunks: number }
  /** Wait this long between chunks. */
  | { kind: 'slow'; delayMs: number }
  /** Answer a streaming request with one non-stream completion JSON, as some compatible servers do. */
  | { kind: 'json' }
  /** After N content chunks, send an `error` chunk (OpenRouter's way of failing after the 200). */
  | { kind: 'stream-error'; afterChunks: number; message: string }
  /** Stream the answer with no usage chunk, as some compatible servers do even when asked for one. */
  | { kind: 'no-usage' };

export interface FakeOpenAIRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
  /** The client closed the connection before the answer was complete. */
  aborted: boolean;
  /** The answer was written to the end. */
  completed: boolean;
}

interface ChatBody {
  model: string;
  messages: { role: string; content: string }[];
  stream?: boolean;
  max_tokens?: number;
  stream_options?: { include_usage?: boolean };
}

function isChatBody(value: unknown): value is ChatBody {
  const body = value as Partial<ChatBody> | null;
  return (
    typeof body?.model === 'string' &&
    Array.isArray(body.messages) &&
    body.messages.every((m) => typeof m?.role === 'string' && typeof m.content === 'string')
  );
}

/** The default reply: the last user message echoed, in pieces of up to 4 characters (one "token" each). */
export function echoReply(body: ChatBody): string {
  const last = body.messages.findLast((m) => m.role === 'user');
  return `Echo: ${last?.content ?? ''}`;
}

export function tokenize(text: string): string[] {
  return Array.from(text.matchAll(/[^]{1,4}/gu), (match) => match[0]);
}

export class FakeOpenAI {
  readonly requests: FakeOpenAIRequest[] = [];
  /** The key it accepts; any other Authorization gets 401 with the key echoed back, as careless APIs do. */
  apiKey = 'sk-fake-key-0123456789abcdef';
  /** Models it knows; others get 404 model_not_found. */
  models = new Set(['gpt-test', 'meta-llama/Llama-3.2-1B-Instruct', 'openai/gpt-test']);
  fault: FakeOpenAIFault | null = null;
  reply: (body: ChatBody) => string = echoReply;
  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  private readonly sockets = new Set<Socket>();

  /** Resolves with the API root, e.g. http://127.0.0.1:40001/v1. */
  async start(port = 0): Promise<string> {
    this.server.on('connection', (socket) => {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return this.baseUrl;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  reset(): void {
    this.requests.length = 0;
    this.fault = null;
    this.reply = echoReply;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: unknown = null;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      // recorded as null; answered below
    }
    const record: FakeOpenAIRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authorization: req.headers.authorization,
      body,
      aborted: false,
      completed: false,
    };
    this.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
    });

    if (record.method !== 'POST' || record.path !== '/v1/chat/completions') {
      return this.error(res, 404, `Unknown request to ${record.path}`, 'invalid_request_error', 'unknown_url');
    }
    if (record.authorization !== `Bearer ${this.apiKey}`) {
      const given = record.authorization?.replace(/^Bearer /, '') ?? '';
      return this.error(res, 401, `Incorrect API key provided: ${given}.`, 'invalid_request_error', 'invalid_api_key');
    }
    if (!isChatBody(body))
      return this.error(res, 400, 'Invalid body: expected model and messages', 'invalid_request_error', null);
    const fault = this.fault;
    if (fault?.kind === 'status') {
      if (fault.retryAfter !== undefined) res.setHeader('retry-after', fault.retryAfter);
      const type = fault.status === 429 ? 'requests' : fault.status >= 500 ? 'server_error' : 'invalid_request_error';
      return this.error(res, fault.status, fault.message ?? `Fault injected: ${fault.status}`, type, null);
    }
    if (!this.models.has(body.model)) {
      return this.error(
        res,
        404,
        `The model \`${body.model}\` does not exist or you do not have access to it.`,
        'invalid_request_error',
        'model_not_found',
      );
    }
    if (fault?.kind === 'stall' && fault.afterChunks === 0) return; // never answers; the client has to give up

    const all = tokenize(this.reply(body));
    const tokens = body.max_tokens === undefined ? all : all.slice(0, body.max_tokens);
    const finishReason = tokens.length < all.length ? 'length' : 'stop';
    const usage = {
      prompt_tokens: body.messages.length * 10,
      completion_tokens: tokens.length,
      total_tokens: body.messages.length * 10 + tokens.length,
    };
    const created = Math.floor(Date.now() / 1000);
    const id = `chatcmpl-fake${this.requests.length}`;

    if (!body.stream || fault?.kind === 'json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model: body.model,
          choices: [
            { index: 0, message: { role: 'assistant', content: tokens.join('') }, finish_reason: finishReason },
          ],
          usage,
        }),
      );
      record.completed = true;
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const chunk = (delta: object, finish: string | null, extra: object = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
    const events: string[] = [chunk({ role: 'assistant', content: '' }, null)];
    tokens.forEach((token, i) => {
      if (fault?.kind === 'malformed' && fault.afterChunks === i)
        events.push('data: {"id":"chatcmpl-broken","choices":[{"delta":{"content":\n\n');
      if (fault?.kind === 'stream-error' && fault.afterChunks === i) {
        events.push(
          `data: ${JSON.stringify({ error: { code: 'server_error', message: fault.message }, choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }] })}\n\n`,
        );
      }
      events.push(chunk({ content: token }, null));
    });
    events.push(chunk({}, finishReason));
    if (body.stream_options?.include_usage && fault?.kind !== 'no-usage') {
      events.push(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage })}\n\n`,
      );
    }
    events.push('data: [DONE]\n\n');

    if (fault?.kind === 'split') {
      const bytes = Buffer.from(events.join(''));
      const sizes = [1, 2, 3, 5, 7, 11, 13];
      for (let offset = 0, i = 0; offset < bytes.length && !res.destroyed; i++) {
        const size = sizes[i % sizes.length] ?? 1;
        res.write(bytes.subarray(offset, offset + size));
        offset += size;
        await sleep(1);
      }
    } else {
      for (const [i, event] of events.entries()) {
        if (res.destroyed) return;
        // Chunk 0 is the role chunk; content chunk n is event n + 1.
        if (fault?.kind === 'stall' && i === fault.afterChunks + 1) return;
        res.write(event);
        if (fault?.kind === 'slow') await sleep(fault.delayMs);
      }
    }
    if (res.destroyed) return;
    res.end();
    record.completed = true;
  }

  private error(res: ServerResponse, status: number, message: string, type: string, code: string | null): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message, type, param: null, code } }));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fake = new FakeOpenAI();
  console.warn(`fake OpenAI API at ${await fake.start(Number(process.argv[2] ?? 0))} (key ${fake.apiKey})`);
}
