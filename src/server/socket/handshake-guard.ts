// The door of Socket.IO, which answers /socket.io/ requests and WebSocket upgrades before any Fastify hook runs:
// Host (DNS rebinding), Origin, and a budget of handshakes per client address, all before a connection exists.
// The budget is per node (docs/SECURITY.md): a balancer spreading one address over N nodes gives it N budgets.
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import ipaddr from 'ipaddr.js';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Env } from '../env.ts';
import { type HostPolicy, hostAllowed, hostPolicy } from '../net/host-guard.ts';
import { type TrustFn, clientAddress, trustFunction } from '../net/proxy-trust.ts';

/** Per-address limits key an IPv4 address, or an IPv6 /64: one subscriber usually holds a whole /64. */
export function addressKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address); // an IPv4-mapped IPv6 address counts as its IPv4 address
  if (parsed.kind() === 'ipv4') return parsed.toString();
  return `${(parsed as ipaddr.IPv6).parts
    .slice(0, 4)
    .map((part) => part.toString(16))
    .join(':')}::/64`;
}

type Callback = (error: string | null | undefined, success: boolean) => void;

export class HandshakeGuard {
  private readonly hosts: HostPolicy;
  private readonly trust: TrustFn;
  private readonly handshakes: RateLimiterMemory;
  /**
   * Each connection's address, taken while its first request is live: Socket.IO hands the namespace that same
   * request later, when (with polling) its TCP connection may be gone, and with it the peer address.
   */
  private readonly addresses = new WeakMap<IncomingMessage, string>();

  constructor(
    private readonly env: Pick<
      Env,
      | 'PUBLIC_ORIGIN'
      | 'ALLOWED_HOSTS'
      | 'HOST'
      | 'TRUST_PROXY'
      | 'SOCKET_HANDSHAKES_PER_IP_PER_MINUTE'
      | 'RATE_LIMIT_DELAY_MS'
    >,
  ) {
    this.hosts = hostPolicy({ publicOrigin: env.PUBLIC_ORIGIN, allowedHosts: env.ALLOWED_HOSTS, host: env.HOST });
    this.trust = trustFunction(env.TRUST_PROXY);
    this.handshakes = new RateLimiterMemory({ points: env.SOCKET_HANDSHAKES_PER_IP_PER_MINUTE, duration: 60 });
  }

  /** The client address of a request, with the proxy trust of Fastify's `request.ip`, as a per-address key. */
  address(request: IncomingMessage): string {
    let address = this.addresses.get(request);
    if (address === undefined) {
      // proxy-addr finds no address on a request whose connection has closed, whatever its type says.
      address = addressKey((clientAddress(request, this.trust) as string | undefined) ?? 'unknown');
      this.addresses.set(request, address);
    }
    return address;
  }

  /** Spends one handshake of `address`'s budget; the refusal's message once the budget is spent, else null. */
  async spend(address: string): Promise<string | null> {
    try {
      await this.handshakes.consume(address);
      return null;
    } catch (refusal) {
      const seconds = Math.ceil((refusal instanceof RateLimiterRes ? refusal.msBeforeNext : 60_000) / 1000);
      return `Too many connection attempts from this address: at most ${this.env.SOCKET_HANDSHAKES_PER_IP_PER_MINUTE} a minute; try again in ${seconds} s`;
    }
  }

  /**
   * Engine.IO's `allowRequest`: runs for the first request of every new connection (polling or WebSocket); the
   * requests of a connection that exists carry its id and are not asked again. A refusal ends the request with
   * 403 (polling) or 400 (upgrade) and this message in the body.
   */
  allowRequest = (request: IncomingMessage, callback: Callback): void => {
    if (!hostAllowed(this.hosts, request.headers.host)) {
      callback('This server does not answer to that host name; add it to ALLOWED_HOSTS', false);
      return;
    }
    if (!this.originAllowed(request)) {
      callback('Cross-origin connections are refused', false);
      return;
    }
    void this.spend(this.address(request)).then(async (refusal) => {
      // Past the budget, the refusal waits (RATE_LIMIT_DELAY_MS), as HTTP's 429s do: a flood slows to its connections.
      if (refusal !== null && this.env.RATE_LIMIT_DELAY_MS > 0) await sleep(this.env.RATE_LIMIT_DELAY_MS);
      callback(refusal, refusal === null);
    });
  };

  /** Browsers send Origin on WebSocket and polling requests: it must be this server (or PUBLIC_ORIGIN). */
  private originAllowed(request: IncomingMessage): boolean {
    const origin = request.headers.origin;
    if (origin === undefined) return true; // not a browser (the headless peer): the session still decides
    if (this.env.PUBLIC_ORIGIN && origin === this.env.PUBLIC_ORIGIN) return true;
    try {
      return new URL(origin).host === request.headers.host;
    } catch {
      return false;
    }
  }
}
