// Planning a pipeline: which peers hold which layers of a model, from each peer's free memory and measured speed
// (docs/pipeline.md#planning). Pure: the requester (or a peer started with `--stage auto`) calls it with what the
// room's peers advertise.

export interface PlanPeer {
  peerId: string;
  /** Memory the peer can give to its stage, in MiB. */
  freeMemoryMb: number;
  /** Measured layers per second (rows through one layer); null when not measured yet (taken as the slowest known). */
  speed: number | null;
}

export interface PlannedStage {
  peerId: string;
  /** Layers [from, to). */
  layers: [number, number];
}

export interface PlanOptions {
  /** Memory one layer needs (its weights, its KV cache at the context, the activations), in MiB. */
  layerMb: number;
  /** The embeddings and the LM head, held by the first and the last stage, in MiB each. */
  endsMb?: number;
}

/**
 * Stages for `layers` layers on the fewest peers that can hold them (every hop adds a round trip to each token),
 * and among those the fastest; layers go to the fastest peers first (a decoded token passes the stages one after
 * another, so its time is the sum of each stage's layers over its speed), peers of equal speed sharing evenly.
 * Null when the peers together cannot hold the model.
 */
export function planStages(layers: number, peers: readonly PlanPeer[], options: PlanOptions): PlannedStage[] | null {
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`a model has at least one layer, not ${layers}`);
  if (!(options.layerMb > 0)) throw new Error('a layer needs some memory (layerMb > 0)');
  const ends = options.endsMb ?? 0;
  const known = peers.map((p) => p.speed).filter((s): s is number => s !== null && s > 0);
  const slowest = known.length ? Math.min(...known) : 1;
  const candidates = peers
    .map((p) => ({
      peerId: p.peerId,
      speed: p.speed !== null && p.speed > 0 ? p.speed : slowest,
      // Every stage might be first or last: room for the larger end is kept on each.
      capacity: Math.min(layers, Math.max(0, Math.floor((p.freeMemoryMb - ends) / options.layerMb))),
    }))
    .filter((p) => p.capacity >= 1)
    .sort((a, b) => b.speed - a.speed || b.capacity - a.capacity || (a.peerId < b.peerId ? -1 : 1));
  const byCapacity = candidates.map((c) => c.capacity).sort((a, b) => b - a);
  let count = 0;
  for (let sum = 0; count < byCapacity.length && sum < layers; count++) sum += byCapacity[count] ?? 0;
  if (byCapacity.slice(0, count).reduce((a, b) => a + b, 0) < layers) return null;
  // The fastest `count` peers that still leave enough room: a peer is skipped when taking it would leave the
  // remaining places unable to hold the rest.
  const chosen: typeof candidates = [];
  for (let i = 0; i < candidates.length && chosen.length < count; i++) {
    const candidate = candidates[i]!;
    const rest = candidates
      .slice(i + 1)
      .map((c) => c.capacity)
      .sort((a, b) => b - a)
      .slice(0, count - chosen.length - 1);
    const held = [...chosen, candidate].reduce((a, c) => a + c.capacity, 0);
    if (held + rest.reduce((a, b) => a + b, 0) >= layers) chosen.push(candidate);
  }
  // Layers to the fastest first; within a group of equal speed, one at a time to whoever holds fewest (even split).
  const assigned = new Map<string, number>(chosen.map((c) => [c.peerId, 1]));
  let left = layers - chosen.length;
  for (let g = 0; g < chosen.length && left > 0;) {
    const speed = chosen[g]!.speed;
    const group = chosen.filter((c) => c.speed === speed);
    while (left > 0) {
      const open = group.filter((c) => (assigned.get(c.peerId) ?? 0) < c.capacity);
      if (!open.length) break;
      open.sort((a, b) => (assigned.get(a.peerId) ?? 0) - (assigned.get(b.peerId) ?? 0));
      const next = open[0]!;
      assigned.set(next.peerId, (assigned.get(next.peerId) ?? 0) + 1);
      left--;
    }
    g += group.length;
  }
  let at = 0;
  return chosen.map((c) => {
    const from = at;
    at += assigned.get(c.peerId) ?? 0;
    return { peerId: c.peerId, layers: [from, at] };
  });
}
