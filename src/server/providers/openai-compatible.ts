// The one client of OpenAI's `POST /chat/completions` (stream: true) that openai, openrouter and huggingface
// share: SSE `data:` chunks up to `[DONE]`, error bodies, timeouts, and abort when the client goes away.
// Past 300 lines because it is one protocol's client: the upstream's schemas, its error statuses, the stream and the
// models listing belong together and nothing else uses them.
import { z } from 'zod';
import type { ChatUsage, FinishReason } from '../../shared/schemas/chat.ts';
import {
  type ChatProvider,
  type ModelAllowList,
  type ProviderChunk,
  ProviderError,
  type ProviderRequest,
  modelPolicy,
  sanitizeUpstreamMessage,
} from './provider.ts';
import { SseParser } from './sse.ts';

export interface OpenAICompatibleConfig {
  label: string;
  /** API root such as https://api.openai.com/v1. */
  baseUrl: string;
  apiKey: string;
  /** Silence allowed before the first byte and between chunks. */
  timeoutMs: number;
  headers?: Record<string, string>;
}

/** Error bodies are short; anything longer is not worth reading (or showing). */
const MAX_ERROR_BODY_BYTES = 16 * 1024;
const MAX_JSON_BODY_BYTES = 4 * 1024 * 1024;
const MAX_RETRY_AFTER_SECONDS = 24 * 60 * 60;

const UsageSchema = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
});

const UpstreamErrorSchema = z.union([z.object({ message: z.string().optional() }).loose(), z.string()]);

// Loose on purpose: providers add fields (reasoning, logprobs, provider names) that the chat does not use.
const ChunkSchema = z
  .object({
    model: z.string().max(256).optional(),
    choices: z
      .array(
        z
          .object({
            delta: z.object({ content: z.string().nullish() }).loose().nullish(),
            finish_reason: z.string().nullish(),
          })
          .loose(),
      )
      .max(16)
      .default([]),
    usage: UsageSchema.nullish(),
    error: UpstreamErrorSchema.optional(),
  })
  .loose();

const CompletionSchema = z
  .object({
    model: z.string().max(256).optional(),
    choices: z
      .array(
        z
          .object({
            message: z.object({ content: z.string().nullish() }).loose(),
            finish_reason: z.string().nullish(),
          })
          .loose(),
      )
      .min(1),
    usage: UsageSchema.nullish(),
  })
  .loose();

const ErrorBodySchema = z.object({ error: UpstreamErrorSchema.optional(), message: z.string().optional() }).loose();

export function finishReason(value: string): FinishReason {
  switch (value) {
    case 'stop':
    case 'eos_token': // text-generation-inference's word for it
    case 'stop_sequence':
      return 'stop';
    case 'length':
    case 'content_filter':
    case 'tool_calls':
      return value;
    case 'function_call':
      return 'tool_calls';
    default:
      return 'other';
  }
}

/** Seconds from a `Retry-After` header: delta-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  const value = header.trim();
  const seconds = /^\d+$/.test(value) ? Number(value) : Math.ceil((Date.parse(value) - now) / 1000);
  if (!Number.isFinite(seconds)) return null;
  return Math.min(Math.max(seconds, 0), MAX_RETRY_AFTER_SECONDS);
}

function upstreamMessage(body: string): string {
  try {
    const parsed = ErrorBodySchema.safeParse(JSON.parse(body));
    if (!parsed.success) return '';
    const error = parsed.data.error;
    return (typeof error === 'string' ? error : error?.message) ?? parsed.data.message ?? '';
  } catch {
    return '';
  }
}

async function readText(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
): Promise<{ text: string; truncated: boolean }> {
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text: text + decoder.decode(), truncated: false };
    bytes += value.byteLength;
    if (bytes > limit) return { text, truncated: true };
    text += decoder.decode(value, { stream: true });
  }
}

function statusError(
  config: OpenAICompatibleConfig,
  request: ProviderRequest,
  response: Response,
  body: string,
): ProviderError {
  const { status } = response;
  const message = sanitizeUpstreamMessage(upstreamMessage(body), [config.apiKey]);
  const detail = message ? `: ${message}` : '';
  if (status === 401 || status === 403) {
    // The upstream's text here quotes the key it saw; say only what happened.
    return new ProviderError('INVALID_KEY', `${config.label} refused the server's API key (HTTP ${status})`);
  }
  if (status === 404)
    return new ProviderError('MODEL_NOT_FOUND', `${config.label} has no model "${request.model}"${detail}`);
  if (status === 429) {
    const wait = retryAfterSeconds(response.headers.get('retry-after'));
    const when = wait === null ? 'try again later' : `retry in ${wait} s`;
    return new ProviderError('RATE_LIMITED', `${config.label} is rate limiting requests; ${when}`, {
      retryAfterSeconds: wait,
    });
  }
  if (status === 408 || status === 504)
    return new ProviderError('UPSTREAM_TIMEOUT', `${config.label} timed out (HTTP ${status})`);
  if (status >= 400 && status < 500)
    return new ProviderError('UPSTREAM_REJECTED', `${config.label} refused the request (HTTP ${status})${detail}`);
  return new ProviderError('UPSTREAM_ERROR', `${config.label} failed (HTTP ${status})`);
}

function parseJson<T>(text: string, schema: z.ZodType<T>, what: string, label: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProviderError('BAD_UPSTREAM_RESPONSE', `${label} sent ${what} that is not JSON`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ProviderError('BAD_UPSTREAM_RESPONSE', `${label} sent ${what} of an unexpected shape`);
  return parsed.data;
}

function usageOf(usage: z.infer<typeof UsageSchema> | null | undefined): ChatUsage | null {
  return usage ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens } : null;
}

export async function* streamChatCompletion(
  config: OpenAICompatibleConfig,
  request: ProviderRequest,
  signal: AbortSignal,
): AsyncGenerator<ProviderChunk> {
  // Aborting fetch's signal reaches the connection only while undici still holds the Request it made from it: the
  // Request follows the signal through a weak reference (nodejs/undici#3644), so after a garbage collection an abort
  // can be lost. Hanging up therefore also cancels the body reader (held here, strongly), and no wait below relies
  // on an abort reaching undici: each one gives up by itself.
  const upstream = new AbortController();
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const hangUp = () => {
    upstream.abort();
    reader?.cancel().catch(() => {});
  };
  let timedOut = false;
  const waitFor = <T>(promise: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const stop = (reason: unknown) => {
        done();
        hangUp();
        reject(reason);
      };
      const onAbort = () => stop(signal.reason);
      // The timer runs only while we wait on the provider, never while the consumer holds a chunk.
      const timer = setTimeout(() => {
        timedOut = true;
        stop(new Error('upstream timeout'));
      }, config.timeoutMs);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (value) => {
          done();
          resolve(value);
        },
        (error: unknown) => {
          done();
          reject(error);
        },
      );
    });

  // Also while the consumer holds a chunk: a client that leaves then must not keep the provider talking.
  signal.addEventListener('abort', hangUp, { once: true });
  try {
    signal.throwIfAborted();
    const { sampling } = request;
    const response = await waitFor(
      fetch(`${config.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: {
          ...config.headers,
          authorization: `Bearer ${config.apiKey}`,
          'content-type': 'application/json',
          accept: 'text/event-stream',
        },
        body: JSON.stringify({
          model: request.model,
          messages: request.messages,
          stream: true,
          stream_options: { include_usage: true },
          temperature: sampling.temperature,
          top_p: sampling.topP,
          max_tokens: sampling.maxTokens,
          seed: sampling.seed,
          stop: sampling.stop,
        }),
        signal: upstream.signal,
        // A redirect would carry the key to wherever it points; API roots do not redirect.
        redirect: 'error',
      }),
    );

    reader = response.body?.getReader() ?? null;
    if (!response.ok) {
      const { text } = reader ? await waitFor(readText(reader, MAX_ERROR_BODY_BYTES)) : { text: '' };
      throw statusError(config, request, response, text);
    }

    if ((response.headers.get('content-type') ?? '').includes('application/json')) {
      // Some compatible servers ignore `stream: true` and answer with one completion.
      if (!reader) throw new ProviderError('BAD_UPSTREAM_RESPONSE', `${config.label} sent an empty answer`);
      const { text, truncated } = await waitFor(readText(reader, MAX_JSON_BODY_BYTES));
      if (truncated)
        throw new ProviderError('BAD_UPSTREAM_RESPONSE', `${config.label} sent an answer larger than 4 MiB`);
      const completion = parseJson(text, CompletionSchema, 'an answer', config.label);
      const [choice] = completion.choices;
      if (choice?.message.content) yield { type: 'delta', text: choice.message.content };
      yield {
        type: 'finish',
        finishReason: finishReason(choice?.finish_reason ?? 'stop'),
        model: completion.model ?? request.model,
        usage: usageOf(completion.usage),
      };
      return;
    }

    if (!reader) throw new ProviderError('BAD_UPSTREAM_RESPONSE', `${config.label} sent an empty answer`);
    const decoder = new TextDecoder();
    const parser = new SseParser();
    let model = request.model;
    let finish: FinishReason | null = null;
    let usage: ChatUsage | null = null;
    let done = false;
    while (!done) {
      const read = await waitFor(reader.read());
      const events = read.done ? parser.end() : parser.push(decoder.decode(read.value, { stream: true }));
      for (const data of events) {
        if (data === '[DONE]') {
          done = true;
          break;
        }
        const chunk = parseJson(data, ChunkSchema, 'a chunk', config.label);
        if (chunk.error !== undefined) {
          // OpenRouter reports failures after the 200 as an `error` chunk.
          const raw = typeof chunk.error === 'string' ? chunk.error : (chunk.error.message ?? '');
          const message = sanitizeUpstreamMessage(raw, [config.apiKey]);
          throw new ProviderError(
            'UPSTREAM_ERROR',
            `${config.label} failed mid-answer${message ? `: ${message}` : ''}`,
          );
        }
        if (chunk.model) model = chunk.model;
        if (chunk.usage) usage = usageOf(chunk.usage);
        const [choice] = chunk.choices;
        if (choice?.finish_reason) finish = finishReason(choice.finish_reason);
        const text = choice?.delta?.content;
        if (text) yield { type: 'delta', text };
      }
      if (read.done) break;
    }
    if (!done && finish === null) {
      throw new ProviderError('BAD_UPSTREAM_RESPONSE', `${config.label} ended its answer before finishing`);
    }
    yield { type: 'finish', finishReason: finish ?? 'stop', model, usage };
  } catch (error) {
    if (error instanceof ProviderError) throw error;
    // The client went away: not a provider failure, the caller ends quietly.
    if (signal.aborted) throw signal.reason;
    if (timedOut) {
      throw new ProviderError('UPSTREAM_TIMEOUT', `${config.label} sent nothing for ${config.timeoutMs / 1000} s`);
    }
    throw new ProviderError('UPSTREAM_ERROR', `Could not reach ${config.label}, or the connection broke`);
  } finally {
    signal.removeEventListener('abort', hangUp);
    // Ends the connection when we stopped early ([DONE] seen, an error, or the consumer returned).
    hangUp();
  }
}

export interface OpenAICompatibleProviderOptions extends Omit<OpenAICompatibleConfig, 'apiKey'> {
  id: ChatProvider['id'];
  /** The model when the operator lists none (see modelPolicy). */
  defaultModel: string;
  /** The provider's `*_MODELS` variable. */
  models: ModelAllowList | undefined;
  apiKey: string | undefined;
  /** The variable that holds the key, named in the not-configured message. */
  keyVariable: string;
}

export function openAICompatibleProvider(options: OpenAICompatibleProviderOptions): ChatProvider {
  const { id, label, defaultModel, models, apiKey, keyVariable, ...rest } = options;
  return {
    id,
    label,
    ...modelPolicy(defaultModel, models),
    configured: apiKey !== undefined,
    stub: false,
    async *stream(request, signal) {
      if (apiKey === undefined) {
        throw new ProviderError(
          'PROVIDER_NOT_CONFIGURED',
          `${label} is not configured on this server (${keyVariable} is unset)`,
        );
      }
      yield* streamChatCompletion({ ...rest, label, apiKey }, request, signal);
    },
  };
}
