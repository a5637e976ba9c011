// What the server logs of requests (docs/SECURITY.md): one line per answered request naming its route, never its
// query string (chat.stream's prompt rides in it), headers or cookies; refusals (429) only as a count a minute,
// since under a flood a line per refusal would cost more than refusing.
import { type FastifyBaseLogger, type FastifyReply, type FastifyRequest, LogController } from 'fastify';

/** What a log line says of a request: method, path (no query string), the matched route and the client's address. */
export function requestLogLine(request: FastifyRequest) {
  // Also called with bare objects (a client error before routing): every field is optional.
  const { method, url, routeOptions, ip } = request as Partial<FastifyRequest>;
  return { method, url: url?.split('?')[0], route: routeOptions?.url, remoteAddress: ip };
}

export class RequestLog extends LogController {
  #refused = 0;

  /** Nothing on arrival: the line is written when the request is answered. */
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const responseTime = Math.round(reply.elapsedTime);
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime }, 'request errored');
    else if (reply.statusCode === 429) this.#refused++;
    else reply.log.info({ req: request, res: reply, responseTime }, 'request completed');
  }

  /** Fastify's own line names the raw URL, query string included. */
  override routeNotFound(request: FastifyRequest): void {
    request.log.info({ req: request }, 'route not found');
  }

  /** Writes (and resets) the count of refusals every minute while the server runs; returns a stop function. */
  summarize(log: FastifyBaseLogger, everyMs = 60_000): () => void {
    const timer = setInterval(() => {
      if (this.#refused > 0) log.warn({ refused: this.#refused }, 'requests refused by rate limits in the last minute');
      this.#refused = 0;
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
