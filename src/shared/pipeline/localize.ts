// Which stage of a pipeline chain made a wrong answer (docs/pipeline.md#records-and-spot-checks). A spot check
// judges a chain as one party: its tokens alone do not say which stage lied. Once two checkers agree against it,
// the job is run again on the served chain with one stage at a time swapped for another peer's copy of the same
// layers (same model version, and the same stage fingerprint where both give one): the stage whose swap gives the
// checkers' tokens is suspected, and blamed alone once it gives the served tokens again with every other stage
// swapped. When the swaps cannot show one within the bound (no stand-in for a stage, runs that fail, two stages
// lying, a liar answering honestly in the re-runs), the whole chain is blamed, saying why.
import type { LayerRange, PipelineCapability } from './pipe-protocol.ts';
import type { StagePlacement } from './chain.ts';

export const PIPELINE_CHECK_LIMITS = {
  /**
   * Re-runs one confirmed mismatch may cost to find the stage that lied (each a whole job on a chain with one stage
   * swapped): past it the whole chain is blamed. Its default in askPipeline (PipelineAsk.localizeRuns may lower
   * or raise it, up to JOB_LIMITS.stages).
   */
  localizeRuns: 4,
} as const;

/** A peer that could run one stage in place of the served one. */
export interface StandIn {
  peerId: string;
  userId: string;
}

/** What the swaps found: the stage peers shown to disagree, or why the whole chain is blamed. */
export type Blame =
  | { scope: 'stage'; stages: StagePlacement[]; standIns: string[]; runs: number; why: string }
  | { scope: 'chain'; runs: number; why: string };

const sameRange = (a: LayerRange, b: LayerRange) => a[0] === b[0] && a[1] === b[1];
const sameTokens = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((token, i) => token === b[i]);

/**
 * Peers among `hosts` that could run `stage` in place of `served`'s: of the same model version, holding the layers,
 * able to load them from files or to cut them, with the served stage's fingerprint for them when both give one;
 * none of `skipUsers` (the served chain's users) nor already in the chain. Peers holding the layers come first.
 */
export function standInsFor(
  hosts: readonly (StandIn & { pipeline: PipelineCapability })[],
  served: PipelineCapability | undefined,
  stage: StagePlacement,
  chain: readonly StagePlacement[],
  skipUsers: ReadonlySet<string>,
): StandIn[] {
  if (!served) return [];
  const print = (p: PipelineCapability) => p.fingerprints.find((f) => sameRange(f.layers, stage.layers))?.sha256;
  const servedPrint = print(served);
  const holds = (p: PipelineCapability) => p.holds.some((r) => sameRange(r, stage.layers));
  return hosts
    .filter(
      ({ peerId, userId, pipeline: p }) =>
        !skipUsers.has(userId) &&
        !chain.some((s) => s.peerId === peerId) &&
        p.version === served.version &&
        p.layers === served.layers &&
        (holds(p) || p.anyRange || p.loadable.some((r) => sameRange(r, stage.layers))) &&
        (servedPrint === undefined || print(p) === undefined || print(p) === servedPrint),
    )
    .sort((a, b) => Number(holds(b.pipeline)) - Number(holds(a.pipeline)))
    .map(({ peerId, userId }) => ({ peerId, userId }));
}

export interface LocalizeInput {
  /** The chain that served the answer, in layer order. */
  stages: readonly StagePlacement[];
  /** The served tokens, and the ones the checkers agreed on. */
  served: readonly number[];
  corrected: readonly number[];
  /** Stand-ins for stage `index`, best first. */
  standIns: (index: number) => StandIn[];
  /** Runs the job on `stages`; null when that chain could not. */
  rerun: (stages: StagePlacement[]) => Promise<number[] | null>;
  /** At most this many re-runs (PIPELINE_CHECK_LIMITS.localizeRuns). */
  maxRuns: number;
}

/**
 * Swaps one stage of the served chain at a time (in layer order, each for its first stand-in that runs the job) up
 * to the first swap whose tokens are the checkers': that stage's peer is suspected. A swap giving the served tokens
 * clears nothing (another stage made them); one giving other tokens is set aside. The suspect is blamed only if,
 * with every other stage swapped, it alone gives the served tokens again: the peer that lied is in every swap of
 * another stage and could answer honestly there to frame a neighbour, but it is in none of that confirming run.
 */
export async function localizeMismatch(input: LocalizeInput): Promise<Blame> {
  const { stages, served, corrected, maxRuns } = input;
  if (stages.length < 2) return { scope: 'chain', runs: 0, why: 'the chain has one stage' };
  let runs = 0;
  let failed = 0;
  let third = 0;
  const missing: string[] = [];
  const bound = (): Blame => ({
    scope: 'chain',
    runs,
    why: `no swap showed the stage that disagreed within ${maxRuns} re-runs`,
  });
  /** The stand-in whose swap ran, and its tokens, per stage. */
  const swaps = new Map<number, { standIn: StandIn; tokens: number[] }>();
  let suspect = -1;
  for (const [index, stage] of stages.entries()) {
    const candidates = input.standIns(index);
    if (candidates.length === 0) missing.push(`${stage.layers[0]}–${stage.layers[1]}`);
    for (const standIn of candidates) {
      if (runs >= maxRuns) return bound();
      runs++;
      const tokens = await input.rerun(
        stages.map((s, i) => (i === index ? { peerId: standIn.peerId, layers: s.layers } : s)),
      );
      if (!tokens) {
        failed++;
        continue;
      }
      swaps.set(index, { standIn, tokens });
      if (sameTokens(tokens, corrected)) suspect = index;
      else if (!sameTokens(tokens, served)) third++;
      break;
    }
    if (suspect >= 0) break;
  }
  if (suspect < 0) {
    const why = missing.length
      ? `no other peer could stand in for layers ${missing.join(', ')}`
      : third
        ? `a swap gave tokens neither the served nor the checkers' (a stand-in disagrees too)`
        : failed
          ? `${failed} of ${runs} swapped re-runs failed and the others gave the served tokens`
          : `every single swap gave the served tokens (more than one stage disagrees)`;
    return { scope: 'chain', runs, why };
  }
  const stage = stages[suspect]!;
  const layers = `layers ${stage.layers[0]}–${stage.layers[1]}`;
  const others = stages.flatMap((_, i) => (i === suspect ? [] : [i]));
  // With two stages, the other stage's swap already ran the suspect alone.
  let alone = others.length === 1 ? swaps.get(others[0]!)?.tokens : undefined;
  if (!alone) {
    const used = new Set<string>();
    const confirming: StagePlacement[] = [];
    for (const [i, s] of stages.entries()) {
      if (i === suspect) {
        confirming.push(s);
        continue;
      }
      const pick = [swaps.get(i)?.standIn, ...input.standIns(i)].find((c) => c && !used.has(c.peerId));
      if (!pick) return { scope: 'chain', runs, why: `no stand-ins for every stage but ${layers} at once` };
      used.add(pick.peerId);
      confirming.push({ peerId: pick.peerId, layers: s.layers });
    }
    if (runs >= maxRuns) return bound();
    runs++;
    alone = (await input.rerun(confirming)) ?? undefined;
  }
  if (!alone || !sameTokens(alone, served))
    return {
      scope: 'chain',
      runs,
      why: `swapping ${layers} gave the checkers' tokens, but with every other stage swapped its peer did not give the served ones`,
    };
  return {
    scope: 'stage',
    stages: [stage],
    standIns: [swaps.get(suspect)!.standIn.peerId],
    runs,
    why: `swapping its stage (${layers}) for another peer's copy gave the checkers' tokens, and with every other stage swapped it gave the served ones`,
  };
}
