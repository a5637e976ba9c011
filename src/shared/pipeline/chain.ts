// Which peers can run a model's layers one after another (docs/pipeline.md, "The requester"): pure, over what each
// peer says of its stages, so the room's requester (room-pipeline.ts, its peers' links) and the server's listing of
// what a room can run (src/server/openai/room-models.ts, its signaling presence) find the same chain.
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

/**
 * A chain of distinct peers covering every layer of the model `hosts` host stages of: stages held now (longest
 * stages first: every hop adds a round trip per token); else a plan (planStages: memory and speed) over peers that
 * can cut any range (`--stage auto` with the whole model); else stage files peers can load. Null when none covers.
 */
export function stageChain(hosts: readonly StageHostView[]): StagePlacement[] | null {
  const layers = hosts[0]?.pipeline.layers;
  if (!layers) return null;
  const search = (ranges: (h: StageHostView) => LayerRange[]) => {
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
