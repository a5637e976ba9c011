// What a mesh job is made of, as the requester and its callers see it: the peers it can go to, the request, its
// outcome and its errors (job-requester.ts runs it).
import type { EngineMessage } from '../engine-protocol.ts';
import type { JobSampling, ModelRef, OutgoingPeerMessage, PeerCapabilities } from '../peer-protocol.ts';
import type { GeneratedToken } from './engine-gate.ts';
import type { TrustPolicy } from './peer-trust.ts';
import type { SpotCheck } from './spot-check.ts';

export interface PeerView {
  peerId: string;
  /** The user behind the peer, as the server stamped it: exclusion sticks to the user, not one connection. */
  userId: string;
  name: string;
  capabilities: PeerCapabilities;
  rttMs: number | null;
  send: (message: OutgoingPeerMessage) => Promise<boolean>;
}

export interface JobRequesterOptions extends TrustPolicy {
  /** No token for this long from a peer that accepted (per queue position before the first): it has stalled. */
  stallMs: number;
  /** A peer that neither accepts nor rejects an offer within this is passed over. */
  acceptTimeoutMs: number;
  /** The whole answer, failovers included, within this. */
  deadlineMs: number;
  random: () => number;
}

export const DEFAULT_REQUESTER_OPTIONS: JobRequesterOptions = {
  spotCheckRate: 0.1,
  // Every answer from a user new here is checked until three checks of its answers have held up.
  newcomerCheckRate: 1,
  trustAfterMatches: 3,
  stallMs: 8000,
  acceptTimeoutMs: 5000,
  deadlineMs: 5 * 60_000,
  random: Math.random,
};

export interface MeshRequest {
  model: ModelRef;
  messages: EngineMessage[];
  sampling: JobSampling;
  onToken: (token: GeneratedToken, peer: PeerView) => void;
  /** The peer now serving the job (again after each failover). */
  onServer?: (peer: PeerView, failovers: number) => void;
  /** A peer that took the job's spot check (it re-runs the whole job). */
  onChecker?: (peer: PeerView) => void;
}

export interface MeshOutcome {
  jobId: string;
  text: string;
  tokenIds: number[];
  reason: 'eos' | 'length' | 'interrupted';
  /** Every peer that made part of the answer, in order. */
  servedBy: PeerView[];
  failovers: number;
  tokensIn: number;
  /** From asking to the first token, as this side saw it. */
  ttftMs: number;
  /** The last serving engine's own time to first token (its side of `ttftMs`). */
  servedTtftMs: number;
  tokensPerSecond: number;
  backend: string;
  /** Resolves after the spot check, if this job was picked for one. */
  check: Promise<SpotCheck> | null;
}

export class MeshJobError extends Error {
  constructor(
    /** BUSY: every peer that could run it refused it for now (queue full, its per-requester cap): try again soon. */
    /** CONTEXT_OVERFLOW: the last message alone leaves no room for an answer in the model's context (any peer's). */
    readonly code: 'NO_PEER' | 'BUSY' | 'DEADLINE' | 'CANCELLED' | 'INVALID' | 'CONTEXT_OVERFLOW',
    message: string,
  ) {
    super(message);
    this.name = 'MeshJobError';
  }
}
