// The STUN servers a server hands out when ICE_SERVERS is not set (src/server/env.ts; README, "Configuration").
import type { IceServer } from './peer-link.ts';

/**
 * Public STUN servers: they tell each browser its public address, so peers behind ordinary home NATs on different
 * networks find a direct route. They relay nothing (a strict NAT or firewall on both sides needs a TURN server,
 * which has to be configured). Two operators, so one being down does not stop links.
 */
export const DEFAULT_ICE_SERVERS: IceServer[] = [
  { urls: ['stun:stun.l.google.com:19302', 'stun:stun1.l.google.com:19302'] },
  { urls: 'stun:stun.cloudflare.com:3478' },
];
