// Which Host names this server answers (DNS rebinding: a page on attacker.example whose name is made to resolve
// to 127.0.0.1 or a LAN address would otherwise drive a local install as a same-origin page). An IP literal
// cannot be rebound, so it is always served; names must be localhost, PUBLIC_ORIGIN's host or ALLOWED_HOSTS.
import ipaddr from 'ipaddr.js';

export interface HostPolicy {
  /** Lower-case host names (no port) this server answers besides IP literals and localhost. */
  names: ReadonlySet<string>;
}

export function hostPolicy(options: {
  publicOrigin?: string | undefined;
  allowedHosts: readonly string[];
  host: string;
}): HostPolicy {
  const names = new Set(options.allowedHosts.map((name) => name.toLowerCase()));
  names.add('localhost');
  if (options.publicOrigin) names.add(new URL(options.publicOrigin).hostname.toLowerCase());
  // HOST may name the interface by a host name (e.g. a machine's own name on the LAN).
  if (!ipaddr.isValid(options.host) && options.host !== '') names.add(options.host.toLowerCase());
  return { names };
}

/** The host name of a Host header without its port (`[::1]:8787` -> `::1`), or null when it is malformed. */
export function hostName(header: string): string | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(header.trim());
  const name = match?.[1] ?? match?.[2];
  return name ? name.toLowerCase().replace(/\.$/, '') : null;
}

export function hostAllowed(policy: HostPolicy, header: string | undefined): boolean {
  if (header === undefined) return false;
  const name = hostName(header);
  if (name === null) return false;
  if (ipaddr.isValid(name)) return true;
  return policy.names.has(name) || name.endsWith('.localhost');
}
