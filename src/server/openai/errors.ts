// Errors of the OpenAI-compatible API in OpenAI's shape, `{ error: { message, type, param, code } }`, with its
// statuses: what the official clients turn into their error classes (AuthenticationError, NotFoundError, ...).
import type { ProviderErrorCode } from '../../shared/schemas/chat.ts';
import { ProviderError } from '../providers/provider.ts';

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'api_error';

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

export class OpenAIError extends Error {
  override name = 'OpenAIError';
  constructor(
    readonly status: number,
    readonly type: OpenAIErrorType,
    readonly code: string | null,
    message: string,
    readonly options: { param?: string | null; retryAfterSeconds?: number | null } = {},
  ) {
    super(message);
  }

  body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.options.param ?? null, code: this.code } };
  }

  static invalidRequest(message: string, param: string | null = null): OpenAIError {
    return new OpenAIError(400, 'invalid_request_error', 'invalid_request_error', message, { param });
  }

  static invalidKey(message: string): OpenAIError {
    return new OpenAIError(401, 'authentication_error', 'invalid_api_key', message);
  }

  static modelNotFound(message: string): OpenAIError {
    return new OpenAIError(404, 'not_found_error', 'model_not_found', message, { param: 'model' });
  }

  static rateLimited(message: string, retryAfterSeconds: number): OpenAIError {
    return new OpenAIError(429, 'rate_limit_error', 'rate_limit_exceeded', message, { retryAfterSeconds });
  }

  static unavailable(message: string, retryAfterSeconds: number | null = null): OpenAIError {
    return new OpenAIError(503, 'api_error', 'unavailable', message, { retryAfterSeconds });
  }
}

/** Upstream trouble is the gateway's (502/504), refusals are the caller's (4xx), waits carry Retry-After. */
const PROVIDER_STATUS: Record<ProviderErrorCode, { status: number; type: OpenAIErrorType; code: string }> = {
  PROVIDER_NOT_CONFIGURED: { status: 404, type: 'not_found_error', code: 'model_not_found' },
  MODEL_NOT_ALLOWED: { status: 404, type: 'not_found_error', code: 'model_not_found' },
  MODEL_NOT_FOUND: { status: 404, type: 'not_found_error', code: 'model_not_found' },
  ACCOUNT_REQUIRED: { status: 403, type: 'permission_error', code: 'account_required' },
  UPSTREAM_REJECTED: { status: 400, type: 'invalid_request_error', code: 'upstream_rejected' },
  RATE_LIMITED: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  TOO_MANY_STREAMS: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  USER_BUDGET_SPENT: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  SERVER_BUDGET_SPENT: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  SERVER_BUSY: { status: 503, type: 'api_error', code: 'server_busy' },
  INVALID_KEY: { status: 502, type: 'api_error', code: 'upstream_error' },
  UPSTREAM_ERROR: { status: 502, type: 'api_error', code: 'upstream_error' },
  BAD_UPSTREAM_RESPONSE: { status: 502, type: 'api_error', code: 'upstream_error' },
  UPSTREAM_TIMEOUT: { status: 504, type: 'api_error', code: 'upstream_timeout' },
};

/** A chat refusal or failure (src/server/services/chat.ts) as OpenAI would answer it. */
export function fromProviderError(error: ProviderError): OpenAIError {
  const { status, type, code } = PROVIDER_STATUS[error.code];
  // A cap on running chats frees up within seconds; the others say when.
  const wait = error.retryAfterSeconds ?? (status === 429 || status === 503 ? 1 : null);
  return new OpenAIError(status, type, code, error.message, {
    param: code === 'model_not_found' ? 'model' : null,
    retryAfterSeconds: wait,
  });
}

/** The one-line replies of the plugins before a route runs (`{ error: 'RATE_LIMITED', message }`) in OpenAI's shape. */
export function fromPluginReply(status: number, body: { error: string; message?: unknown }): OpenAIErrorBody {
  const type: OpenAIErrorType =
    status === 401
      ? 'authentication_error'
      : status === 403
        ? 'permission_error'
        : status === 404
          ? 'not_found_error'
          : status === 429
            ? 'rate_limit_error'
            : status >= 500
              ? 'api_error'
              : 'invalid_request_error';
  const message = typeof body.message === 'string' ? body.message : 'The request was refused';
  return {
    error: { message, type, param: null, code: status === 429 ? 'rate_limit_exceeded' : body.error.toLowerCase() },
  };
}

export { ProviderError };
