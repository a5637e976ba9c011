// The spot check of a finished mesh job, given a way to re-run it: the job is run again on a peer of another user
// than those who served it, and token ids and texts are compared. On a mismatch a third peer decides; the user the
// majority contradicts is excluded (and the served answer corrected if it lost). With no third opinion the
// mismatch is reported and nobody is excluded: two peers alone cannot say which is wrong. No checker at all is
// UNRESOLVED: an answer nobody re-ran proves nothing, and only checks that held up earn its users trust.
import type { GeneratedToken } from './engine-gate.ts';

export interface SpotCheck {
  /**
   * MATCH: the served tokens held up (by majority when a third opinion was needed); MISMATCH: they did not;
   * UNRESOLVED: no checker answered, or the opinions split with no majority. Silence is never a match.
   */
  result: 'MATCH' | 'MISMATCH' | 'UNRESOLVED';
  checkers: string[];
  /** Peers excluded because of this check. */
  excluded: string[];
  /** The tokens that replaced the served ones, when they did not hold up. */
  corrected?: { tokenIds: number[]; text: string };
  /**
   * A chain of stage peers caught (MISMATCH): `stage` when re-runs with one stage swapped showed which of its peers
   * disagreed (only they are excluded), `chain` when they could not (every peer of the chain is), with why and the
   * re-runs it took (docs/pipeline.md#records-and-spot-checks).
   */
  blame?: { scope: 'stage' | 'chain'; runs: number; why: string };
}

export interface CheckPeer {
  peerId: string;
  userId: string;
  /**
   * Several peers answering as one: a pipeline's chain of stage peers (docs/pipeline.md). A chain is judged whole
   * (tokens alone do not say which stage was wrong): its peers are named and skipped together, and excluded
   * together unless `blameMembers` narrows the verdict to the stage peers shown to disagree.
   */
  members?: readonly { peerId: string; userId: string }[];
}

const usersOf = (peer: CheckPeer) => peer.members?.map((member) => member.userId) ?? [peer.userId];
const peerIdsOf = (peer: CheckPeer) => peer.members?.map((member) => member.peerId) ?? [peer.peerId];

/** What the check found, for the requester to act on; `check` is what its caller is told. */
export interface SpotCheckVerdict<P extends CheckPeer> {
  check: SpotCheck;
  /** Users to exclude from scheduling, with why. */
  exclusions: Array<{ peer: P; why: string }>;
  /** Users whose answers held up (they earn trust); empty unless the result is MATCH. */
  matchedUsers: string[];
  /** A peer the check caught disagreeing (excluded or not), to report. */
  mismatch: P | null;
}

export interface SpotCheckInput<P extends CheckPeer> {
  jobId: string;
  /** The served answer, and which peer made each of its tokens. */
  tokens: GeneratedToken[];
  madeBy: P[];
  /** Peers that could check the job now, in the order to try them (drawn, not ranked), none of `skipUsers`. */
  candidates: (skipUsers: ReadonlySet<string>) => P[];
  /** Runs the whole job again on `peer`; null when that peer could not. */
  rerun: (peer: P) => Promise<GeneratedToken[] | null>;
}

const same = (a: GeneratedToken[], b: GeneratedToken[]) =>
  a.length === b.length && a.every((token, i) => token.tokenId === b[i]?.tokenId && token.text === b[i]?.text);

export async function spotCheck<P extends CheckPeer>({
  jobId,
  tokens,
  madeBy,
  candidates,
  rerun,
}: SpotCheckInput<P>): Promise<SpotCheckVerdict<P>> {
  const skipUsers = new Set(madeBy.flatMap(usersOf));
  const checkers: P[] = [];
  const opinion = async (): Promise<GeneratedToken[] | null> => {
    for (const peer of candidates(skipUsers)) {
      for (const user of usersOf(peer)) skipUsers.add(user);
      const answer = await rerun(peer);
      if (answer) {
        checkers.push(peer);
        return answer;
      }
    }
    return null;
  };
  const verdict = (
    result: SpotCheck['result'],
    details: { excluded?: Array<{ peer: P; why: string }>; corrected?: GeneratedToken[]; mismatch?: P | null } = {},
  ): SpotCheckVerdict<P> => {
    const exclusions = details.excluded ?? [];
    return {
      check: {
        result,
        checkers: checkers.flatMap(peerIdsOf),
        excluded: exclusions.flatMap(({ peer }) => peerIdsOf(peer)),
        ...(details.corrected
          ? {
              corrected: {
                tokenIds: details.corrected.map((t) => t.tokenId),
                text: details.corrected.map((t) => t.text).join(''),
              },
            }
          : {}),
      },
      exclusions,
      matchedUsers: result === 'MATCH' ? [...new Set(madeBy.flatMap(usersOf))] : [],
      mismatch: details.mismatch ?? null,
    };
  };

  const first = await opinion();
  if (!first) return verdict('UNRESOLVED');
  if (same(first, tokens)) return verdict('MATCH');
  // The first token that differs tells which serving peer made it (past the end: the last one, who stopped early).
  const at = tokens.findIndex((token, i) => token.tokenId !== first[i]?.tokenId || token.text !== first[i]?.text);
  const culprit = madeBy[at === -1 ? tokens.length - 1 : at] ?? madeBy.at(-1) ?? null;
  const second = await opinion();
  if (!second || !culprit) return verdict('UNRESOLVED', { mismatch: culprit });
  if (same(second, first)) {
    return verdict('MISMATCH', {
      excluded: [{ peer: culprit, why: `its tokens for job ${jobId} did not match two other peers'` }],
      corrected: first,
      mismatch: culprit,
    });
  }
  const [wrongChecker] = checkers;
  if (same(second, tokens) && wrongChecker) {
    return verdict('MATCH', {
      excluded: [{ peer: wrongChecker, why: `its spot check of job ${jobId} did not match two other peers'` }],
      mismatch: wrongChecker,
    });
  }
  return verdict('UNRESOLVED', { mismatch: culprit });
}

/**
 * `verdict` of a chain caught whole (MISMATCH, the served chain its `mismatch`), narrowed to what finding the stage
 * that lied showed (pipeline/localize.ts): with `culprits`, only those members are excluded and reported, each with
 * `why`; without, every member still is, and `why` says why no stage could be singled out.
 */
export function blameMembers<P extends CheckPeer>(
  verdict: SpotCheckVerdict<P>,
  blame: { culprits: readonly string[] | null; runs: number; why: string },
  jobId: string,
): SpotCheckVerdict<P | CheckPeer> {
  const chain = verdict.mismatch;
  if (verdict.check.result !== 'MISMATCH' || !chain?.members) return verdict;
  const members = chain.members.filter((m) => blame.culprits?.includes(m.peerId));
  if (!blame.culprits || members.length === 0)
    return {
      ...verdict,
      exclusions: verdict.exclusions.map(({ peer, why }) => ({ peer, why: `${why}; the whole chain: ${blame.why}` })),
      check: { ...verdict.check, blame: { scope: 'chain', runs: blame.runs, why: blame.why } },
    };
  const culprit: CheckPeer = members.length === 1 ? { ...members[0]! } : { ...members[0]!, members };
  const why = `its stage of job ${jobId} did not match two other peers': ${blame.why}`;
  return {
    ...verdict,
    exclusions: [{ peer: culprit, why }],
    mismatch: culprit,
    check: {
      ...verdict.check,
      excluded: members.map((m) => m.peerId),
      blame: { scope: 'stage', runs: blame.runs, why: blame.why },
    },
  };
}
