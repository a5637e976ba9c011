// Errors in OpenAI's shape (`{ "error": { "message", "type", "param", "code" } }`) for the /v1 scope
// (src/server/routes/openai.ts): its own refusals, the plugins' early ones and Fastify's, and unknown URLs.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { OpenAIError, fromPluginReply } from './errors.ts';

function send(reply: FastifyReply, error: OpenAIError): FastifyReply {
  const wait = error.options.retryAfterSeconds;
  if (wait !== null && wait !== undefined) void reply.header('retry-after', String(Math.max(1, Math.ceil(wait))));
  return reply.code(error.status).send(error.body());
}

/** The zod issue as OpenAI words a bad parameter: its message, and `param` the field's path. */
export function invalidBody(issues: readonly { path: readonly PropertyKey[]; message: string }[]): OpenAIError {
  const issue = issues[0];
  const param = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : null;
  return OpenAIError.invalidRequest(
    param ? `Invalid '${param}': ${issue?.message}` : (issue?.message ?? 'Invalid request body'),
    param,
  );
}

/**
 * Makes everything in `app`'s scope answer in OpenAI's shape: the plugins' early refusals (rate limits, the Host and
 * cross-site guards, body limits), Fastify's own errors and unknown URLs included.
 */
export function answerInOpenAIShape(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | OpenAIError, request, reply) => {
    if (error instanceof OpenAIError) return send(reply, error);
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return send(reply, new OpenAIError(500, 'api_error', null, 'Internal server error'));
    }
    const wait = Number(reply.getHeader('retry-after'));
    if (status === 429) return send(reply, OpenAIError.rateLimited(error.message, Number.isFinite(wait) ? wait : 1));
    return send(
      reply,
      new OpenAIError(
        status,
        status === 404 ? 'not_found_error' : 'invalid_request_error',
        error.code?.toLowerCase() ?? null,
        error.message,
      ),
    );
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string') return payload;
    try {
      const body = JSON.parse(payload) as { error?: unknown; message?: unknown };
      if (typeof body.error === 'string')
        return JSON.stringify(fromPluginReply(reply.statusCode, { error: body.error, message: body.message }));
    } catch {
      // Not JSON: leave it.
    }
    return payload;
  });
  app.setNotFoundHandler({ preHandler: app.rateLimit() }, async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    return send(
      reply,
      new OpenAIError(
        404,
        'invalid_request_error',
        'unknown_url',
        `Unknown request URL: ${request.method} ${path}. This server offers GET /v1/models and POST /v1/chat/completions`,
      ),
    );
  });
}
