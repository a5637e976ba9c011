// The one interface every chat provider implements, and the one error they throw.
import type {
  ChatMessage,
  ChatProviderId,
  ChatSampling,
  ChatUsage,
  FinishReason,
  ProviderErrorCode,
  ProviderErrorData,
} from '../../shared/schemas/chat.ts';

export interface ProviderRequest {
  model: string;
  messages: ChatMessage[];
  sampling: ChatSampling;
}

/** Text as it arrives, then at most one `finish` (the stream may end without one if the provider sends none). */
export type ProviderChunk =
  | { type: 'delta'; text: string }
  | { type: 'finish'; finishReason: FinishReason; model: string; usage: ChatUsage | null };

/** `*` (any model) or the models a provider may be asked for, its default first. */
export type ModelAllowList = '*' | readonly string[];

export interface ChatProvider {
  id: ChatProviderId;
  label: string;
  defaultModel: string;
  /** Checked before any upstream request: a model the operator did not list is never paid for. */
  models: ModelAllowList;
  /** False when its key is missing: `stream` then throws PROVIDER_NOT_CONFIGURED. */
  configured: boolean;
  stub: boolean;
  /** Aborting `signal` (the client went away) aborts the upstream request; the iterator then ends with it. */
  stream(request: ProviderRequest, signal: AbortSignal): AsyncIterable<ProviderChunk>;
}

/**
 * A provider's model policy from its `*_MODELS` variable: unset, only the built-in default; `*`, any model
 * with the built-in default; a list, those models with the first as the default (so a client that names no
 * model still gets one the operator allowed).
 */
export function modelPolicy(
  builtInDefault: string,
  configured: ModelAllowList | undefined,
): { defaultModel: string; models: ModelAllowList } {
  if (configured === '*') return { defaultModel: builtInDefault, models: '*' };
  const models = configured?.length ? configured : [builtInDefault];
  return { defaultModel: models[0] ?? builtInDefault, models };
}

export function allowsModel(provider: Pick<ChatProvider, 'models'>, model: string): boolean {
  return provider.models === '*' || provider.models.includes(model);
}

export interface ProviderErrorOptions {
  retryAfterSeconds?: number | null;
  resetsAt?: Date | null;
}

/** A provider failure with a code from the closed set; its message is safe to show (short, no keys). */
export class ProviderError extends Error {
  override name = 'ProviderError';
  readonly retryAfterSeconds: number | null;
  readonly resetsAt: Date | null;
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    options: ProviderErrorOptions = {},
  ) {
    super(message);
    this.retryAfterSeconds = options.retryAfterSeconds ?? null;
    this.resetsAt = options.resetsAt ?? null;
  }

  toData(): ProviderErrorData {
    return {
      code: this.code,
      retryAfterSeconds: this.retryAfterSeconds,
      resetsAt: this.resetsAt?.toISOString() ?? null,
    };
  }
}

const MAX_UPSTREAM_MESSAGE = 200;
// Shapes of credentials that upstream messages are known to echo ("Incorrect API key provided: sk-...").
const KEY_PATTERNS = [/\b(sk|hf|rk|pk)[-_][A-Za-z0-9_-]{6,}/g, /\bBearer\s+\S+/gi];

/**
 * An upstream's message cut to one short line, with the configured key and anything shaped like a key
 * removed: provider error bodies reach people and logs, keys must not.
 */
export function sanitizeUpstreamMessage(message: string, secrets: readonly string[]): string {
  let text = message
    .replace(/[\p{Cc}\p{Cf}]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  for (const secret of secrets) if (secret) text = text.split(secret).join('[redacted]');
  for (const pattern of KEY_PATTERNS) text = text.replace(pattern, '[redacted]');
  return text.length > MAX_UPSTREAM_MESSAGE ? `${text.slice(0, MAX_UPSTREAM_MESSAGE - 1)}…` : text;
}
