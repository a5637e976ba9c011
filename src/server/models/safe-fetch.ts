// Outbound HTTP for the download proxy, guarded against SSRF (docs/SECURITY.md): redirects are followed by hand,
// a few hops at most, https only, and no connection to loopback, private, link-local or metadata addresses —
// except the configured hub's own origin (a test or self-hosted hub). The address check runs inside the
// socket's DNS lookup, so a name cannot resolve to a public address for the check and a private one for
// the connection (DNS rebinding).
import dns from 'node:dns';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import ipaddr from 'ipaddr.js';

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly code: 'FORBIDDEN_REDIRECT' | 'TOO_MANY_REDIRECTS' | 'HUB_UNREACHABLE' | 'STALLED',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** True for addresses anyone on the internet could reach: not loopback, private, link-local, CGNAT, reserved. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  return parsed.range() === 'unicast';
}

function guardedLookup(allowPrivate: boolean): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses as dns.LookupAddress[];
      const refused = allowPrivate ? undefined : list.find((entry) => !isPublicAddress(entry.address));
      if (refused || list.length === 0) {
        const reason = refused
          ? `${hostname} resolves to a non-public address (${refused.address})`
          : `${hostname} has no address`;
        return callback(new FetchError('FORBIDDEN_REDIRECT', reason), '', 0);
      }
      if ((options as dns.LookupOptions).all)
        return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      const first = list[0] as dns.LookupAddress;
      callback(null, first.address, first.family);
    });
  };
}

export interface SafeFetchOptions {
  /** The configured hub's origin: the only origin allowed over http or on a non-public address. */
  trustedOrigin: string;
  headers?: Record<string, string>;
  /** Sent only to the trusted origin, never to a redirect target (a CDN must not see the token). */
  authorization?: string | undefined;
  maxRedirects?: number;
  /** No response headers within this many ms: give up. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface SafeResponse {
  status: number;
  url: string;
  headers: IncomingHttpHeaders;
  /** Headers of every hop, first to last: the Hub puts X-Linked-Etag and X-Repo-Commit on the redirect. */
  hops: IncomingHttpHeaders[];
  body: IncomingMessage;
}

/** Checks a URL before any connection is made; returns whether private addresses may be used for it. */
export function checkTarget(target: URL, trustedOrigin: string): { allowPrivate: boolean } {
  if (target.origin === trustedOrigin) return { allowPrivate: true };
  if (target.protocol !== 'https:')
    throw new FetchError('FORBIDDEN_REDIRECT', `Refused a non-https URL: ${target.origin}`);
  if (target.username || target.password) throw new FetchError('FORBIDDEN_REDIRECT', 'Refused a URL with credentials');
  const host = target.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) && !isPublicAddress(host)) {
    throw new FetchError('FORBIDDEN_REDIRECT', `Refused a non-public address: ${host}`);
  }
  return { allowPrivate: false };
}

function requestOnce(target: URL, allowPrivate: boolean, headers: Record<string, string>, options: SafeFetchOptions) {
  return new Promise<IncomingMessage>((resolve, reject) => {
    const client = target.protocol === 'https:' ? https : http;
    const request = client.request(target, {
      method: 'GET',
      headers,
      lookup: guardedLookup(allowPrivate),
      signal: options.signal,
      agent: false,
    });
    request.setTimeout(options.timeoutMs ?? 30_000, () => {
      request.destroy(
        new FetchError('STALLED', `No answer from ${target.origin} within ${options.timeoutMs ?? 30_000} ms`),
      );
    });
    // The same idle timeout then guards the body: a response that stops sending is destroyed.
    request.once('response', resolve);
    request.once('error', (error) => {
      if (error instanceof FetchError || error.name === 'AbortError') return reject(error);
      reject(new FetchError('HUB_UNREACHABLE', `Could not reach ${target.origin}: ${error.message}`, { cause: error }));
    });
    request.end();
  });
}

export async function safeFetch(url: string, options: SafeFetchOptions): Promise<SafeResponse> {
  const maxRedirects = options.maxRedirects ?? 5;
  const hops: IncomingHttpHeaders[] = [];
  let target = new URL(url);
  for (let hop = 0; ; hop++) {
    const { allowPrivate } = checkTarget(target, options.trustedOrigin);
    const headers: Record<string, string> = { 'user-agent': 'mesh-nanollm', ...options.headers };
    if (options.authorization && target.origin === options.trustedOrigin) headers.authorization = options.authorization;
    const response = await requestOnce(target, allowPrivate, headers, options);
    hops.push(response.headers);
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location) {
      response.resume();
      if (hop >= maxRedirects)
        throw new FetchError('TOO_MANY_REDIRECTS', `More than ${maxRedirects} redirects from ${url}`);
      target = new URL(response.headers.location, target);
      continue;
    }
    return { status, url: target.toString(), headers: response.headers, hops, body: response };
  }
}

/** Reads a small response body (JSON from the Hub API), refusing more than `maxBytes`. */
export async function readBody(body: IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      body.destroy();
      throw new FetchError('HUB_UNREACHABLE', `Response larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
