// Which X-Forwarded-For hops to believe (TRUST_PROXY), one rule for HTTP (Fastify's request.ip) and for Socket.IO
// handshakes, so a client never chooses its own address: only the hops added by proxies we run are skipped, and
// the address before them is the client's. See docs/SECURITY.md.
import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';

/** false: no proxy; a number: that many proxies in front of the server; a list: the proxies' addresses or CIDRs. */
export type TrustProxy = false | number | string[];

export type TrustFn = (address: string, hop: number) => boolean;

/**
 * The trust function for @fastify/proxy-addr. A hop count trusts the socket's peer and the hops after it up to
 * the count (Express' meaning of a number; Fastify 5 now refuses every hop for a bare number, which would leave a
 * deployment behind a proxy seeing one address for everyone).
 */
export function trustFunction(trust: TrustProxy): TrustFn {
  if (trust === false || trust === 0) return () => false;
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return proxyAddr.compile(trust);
}

/** The client's address as Fastify computes `request.ip` with the same trust function. */
export function clientAddress(request: IncomingMessage, trust: TrustFn): string {
  return proxyAddr(request, trust);
}
