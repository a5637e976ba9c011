// Which peers can run a model's layers one after another (docs/pipeline.md, "The requester"): pure, over what each
// peer says of its stages, so the room's requester (room-pipeline.ts, its peers' links) and the server's listing of
// what a room can run (src/server/openai/room-models.ts, its signaling presence) find the same chain. Stages are
// chained only with stages of the same model version, and a stage whose fingerprint disagrees with the one most
// peers give for the same layers is left out (docs/pipeline.md#stage-fingerprints).
import type { LayerRange, PipelineCapability } from './pipe-protocol.ts';
import { planStages } from './plan.ts';

export interface StageHostView {
  peerId: string;
  /** Round trip to this peer; null when unknown (presence, or no ping yet): it sorts after known ones. */
  rttMs: number | null;
  pipeline: PipelineCapability;
}

export interface StagePlacement {
  peerId: string;
  layers: LayerRange;
}

const sameRange = (a: LayerRange, b: LayerRange) => a[0] === b[0] && a[1] === b[1];

/**
 * A chain of distinct peers covering every layer of the model `hosts` host stages of: stages held now (longest
 * stages first: every hop adds a round trip per token); else a plan (planStages: memory and speed) over peers that
 * can cut any range (`--stage auto` with the whole model); else stage files peers can load. One model version at a
 * time, the most widely held first: stages of other weights never meet in a chain. Null when none covers.
 */
export function stageChain(hosts: readonly StageHostView[]): StagePlacement[] | null {
  const peersOf = (version: string) => hosts.filter((h) => h.pipeline.version === version);
  const versions = [...new Set(hosts.map((h) => h.pipeline.version))];
  versions.sort((a, b) => peersOf(b).length - peersOf(a).length);
  for (const version of versions) {
    const found = chainOf(peersOf(version));
    if (found) return found;
  }
  return null;
}

function chainOf(hosts: readonly StageHostView[]): StagePlacement[] | null {
  const layers = hosts[0]?.pipeline.layers;
  if (!layers) return null;
  // The same layers of the same version should be the same files: a stage whose fingerprint is not the one most
  // peers give for its layers is not chained (with no majority, as between two peers, none is refused: stages cut
  // by different tools may differ in their bytes and still compute the same).
  const agreed = agreedFingerprints(hosts);
  const offered = (h: (typeof hosts)[number], r: LayerRange) => {
    const own = h.pipeline.fingerprints.find((f) => sameRange(f.layers, r))?.sha256;
    return (agreed.get(`${r[0]}-${r[1]}`) ?? own) === own;
  };
  const search = (listed: (h: (typeof hosts)[number]) => LayerRange[]) => {
    const ranges = (h: (typeof hosts)[number]) => listed(h).filter((r) => offered(h, r));
    const walk = (at: number, used: Set<string>): StagePlacement[] | null => {
      if (at === layers) return [];
      const options = hosts
        .filter((h) => !used.has(h.peerId) && h.pipeline.layers === layers)
        .flatMap((h) => ranges(h).map((r) => ({ h, r })))
        .filter(({ r }) => r[0] === at)
        .sort((a, b) => b.r[1] - a.r[1] || (a.h.rttMs ?? Infinity) - (b.h.rttMs ?? Infinity));
      for (const { h, r } of options) {
        const rest = walk(r[1], new Set([...used, h.peerId]));
        if (rest) return [{ peerId: h.peerId, layers: r }, ...rest];
      }
      return null;
    };
    return walk(0, new Set());
  };
  const held = search((h) => h.pipeline.holds);
  if (held) return held;
  const cutters = hosts.filter((h) => h.pipeline.anyRange && h.pipeline.layers === layers);
  const plan = planStages(
    layers,
    cutters.map((h) => ({ peerId: h.peerId, freeMemoryMb: h.pipeline.freeMemoryMb, speed: h.pipeline.speed })),
    { layerMb: Math.max(1e-6, ...cutters.map((h) => h.pipeline.layerMb)) },
  );
  if (plan) return plan.map((s) => ({ peerId: s.peerId, layers: s.layers }));
  return search((h) => [...h.pipeline.holds, ...h.pipeline.loadable]);
}

/** For each stage's layers, the fingerprint most of `hosts` give (null when none has more peers than every other). */
function agreedFingerprints(hosts: readonly { pipeline: PipelineCapability }[]): Map<string, string | null> {
  const counts = new Map<string, Map<string, number>>();
  for (const { pipeline } of hosts)
    for (const { layers, sha256 } of pipeline.fingerprints) {
      const key = `${layers[0]}-${layers[1]}`;
      const byPrint = counts.get(key) ?? new Map<string, number>();
      byPrint.set(sha256, (byPrint.get(sha256) ?? 0) + 1);
      counts.set(key, byPrint);
    }
  return new Map(
    [...counts].map(([key, byPrint]) => {
      const ranked = [...byPrint].sort((a, b) => b[1] - a[1]);
      const [first, second] = ranked;
      return [key, first && (!second || second[1] < first[1]) ? first[0] : null];
    }),
  );
}
