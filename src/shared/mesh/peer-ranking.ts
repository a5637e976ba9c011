// Which peer to ask first: a pure decision over what the peers say of themselves and what this requester has
// measured. A peer's claimed speed is only a hint for a peer never measured here: a liar that claims 10,000
// tokens/s is picked once, measured, and then ranked by what it really did.
import type { ModelRef, PeerCapabilities } from '../peer-protocol.ts';

export interface RankedPeer {
  peerId: string;
  userId: string;
  capabilities: PeerCapabilities;
  rttMs: number | null;
}

export interface RankingFacts {
  /** Tokens per second this requester measured on the peer's finished jobs; null before the first. */
  measuredTokensPerSecond(peerId: string): number | null;
  recentFailures(peerId: string): number;
  isExcluded(userId: string): boolean;
}

/** The speed a ranking believes: measured here once there is a measurement, the peer's own claim before. */
export function believedSpeed(peer: RankedPeer, facts: Pick<RankingFacts, 'measuredTokensPerSecond'>): number {
  return facts.measuredTokensPerSecond(peer.peerId) ?? peer.capabilities.tokensPerSecond ?? 1;
}

/** Higher is better: speed over queue, halved per recent failure, less a little for RTT. */
export function peerScore(peer: RankedPeer, facts: RankingFacts): number {
  const speed = believedSpeed(peer, facts) / (1 + peer.capabilities.queue);
  return speed * 0.5 ** facts.recentFailures(peer.peerId) - (peer.rttMs ?? 50) / 100;
}

/** Peers that can run `model`, best first: sharing, the exact file loaded, not excluded, not in `skip`. */
export function rankPeers<P extends RankedPeer>(
  peers: readonly P[],
  model: ModelRef,
  facts: RankingFacts,
  skip: ReadonlySet<string> = new Set(),
): P[] {
  return peers
    .filter((peer) => peer.capabilities.sharing && !skip.has(peer.peerId) && !facts.isExcluded(peer.userId))
    .filter((peer) => peer.capabilities.models.some((m) => m.sha256 === model.sha256))
    .map((peer) => ({ peer, score: peerScore(peer, facts) }))
    .sort((a, b) => b.score - a.score)
    .map(({ peer }) => peer);
}

/**
 * Tokens per second as the requester lived them: tokens made over the time from the offer to the last message.
 * Timed from the offer, not the first token, so a peer cannot look fast by holding its tokens back and sending
 * them in one burst. Null when nothing was made.
 */
export function measuredSpeed(tokens: number, offeredAt: number, doneAt: number): number | null {
  if (tokens <= 0) return null;
  return tokens / (Math.max(doneAt - offeredAt, 1) / 1000);
}
