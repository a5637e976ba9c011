// OpenAI's chat completion objects, as its API sends them: one `chat.completion`, or `chat.completion.chunk`s over
// server-sent events ending in `data: [DONE]`.
import { randomBytes } from 'node:crypto';
import type { ChatUsage, FinishReason } from '../../shared/schemas/chat.ts';
import { estimateTokens } from '../providers/budget.ts';
import type { OpenAIErrorBody } from './errors.ts';

export type OpenAIFinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls';

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Ours has `other` (a provider's own reason); OpenAI's clients know only its four. */
export function openAIFinishReason(reason: FinishReason): OpenAIFinishReason {
  return reason === 'other' ? 'stop' : reason;
}

/** The provider's count, or (when it reported none) the same estimate the token budgets charge. */
export function openAIUsage(usage: ChatUsage | null, promptChars: number, answerChars: number): OpenAIUsage {
  const prompt = usage?.promptTokens ?? estimateTokens(promptChars);
  const completion = usage?.completionTokens ?? estimateTokens(answerChars);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export interface CompletionMeta {
  id: string;
  created: number;
  /** The model as the client named it. */
  model: string;
}

export function completionMeta(model: string): CompletionMeta {
  return { id: `chatcmpl-${randomBytes(18).toString('base64url')}`, created: Math.floor(Date.now() / 1000), model };
}

export function completion(meta: CompletionMeta, text: string, finish: FinishReason, usage: OpenAIUsage) {
  return {
    id: meta.id,
    object: 'chat.completion' as const,
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant' as const, content: text, refusal: null },
        logprobs: null,
        finish_reason: openAIFinishReason(finish),
      },
    ],
    usage,
  };
}

/** Writes the SSE events of one streamed completion. */
export class ChunkWriter {
  /** A text chunk's bytes before and after its text (delta). */
  #deltaEnds: [string, string] | null = null;

  constructor(
    private readonly meta: CompletionMeta,
    private readonly includeUsage: boolean,
  ) {}

  #chunk(choices: unknown[], usage?: OpenAIUsage): string {
    const body = {
      id: this.meta.id,
      object: 'chat.completion.chunk',
      created: this.meta.created,
      model: this.meta.model,
      choices,
    };
    // With include_usage every chunk carries `usage`: null until the last, as OpenAI sends it.
    return event(this.includeUsage ? { ...body, usage: usage ?? null } : body);
  }

  /** The first chunk names the role. */
  role(): string {
    return this.#chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
  }

  /**
   * A text chunk: the bytes #chunk gives (wire.test.ts holds them equal), from the two ends of one made with an empty
   * text, so a token costs one string escape instead of an object built and serialized whole.
   */
  delta(text: string): string {
    if (!this.#deltaEnds) {
      const empty = this.#chunk([{ index: 0, delta: { content: '' }, logprobs: null, finish_reason: null }]);
      // The content is the last string in the chunk: everything after it is fixed.
      const at = empty.lastIndexOf('""');
      this.#deltaEnds = [empty.slice(0, at), empty.slice(at + 2)];
    }
    return this.#deltaEnds[0] + JSON.stringify(text) + this.#deltaEnds[1];
  }

  /** The finish reason, then (when asked for) usage on a chunk with no choices, then [DONE]. */
  end(finish: FinishReason, usage: OpenAIUsage): string {
    const last = this.#chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: openAIFinishReason(finish) }]);
    return last + (this.includeUsage ? this.#chunk([], usage) : '') + 'data: [DONE]\n\n';
  }

  /** A failure after the answer began: OpenAI's clients raise an `error` event as an APIError. There is no [DONE]. */
  error(body: OpenAIErrorBody): string {
    return event(body);
  }
}

function event(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}
