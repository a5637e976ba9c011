// What a room's peers run as a pipeline (docs/pipeline.md): models of the catalogue whose layers peers host as
// stages covering the whole model, that nobody in the room shares whole. The chat offers them on its mesh route
// (routes/pipeline.ts runs the job), the Models screen marks them.
import { useSyncExternalStore } from 'react';
import type { StagePlacement } from '../../../shared/pipeline/room-pipeline.ts';
import type { CatalogueEntry } from '../../../shared/schemas/models.ts';
import { type MeshRoom, useMeshRoom } from './mesh-store.ts';

const noSubscribe = () => () => {};
const noSnapshot = () => null;

/** Models a peer of the room shares whole now (by id). */
function sharedWhole(room: MeshRoom): Set<string> {
  return new Set(
    room.node.list().flatMap((p) => (p.capabilities?.sharing ? p.capabilities.models.map((m) => m.id) : [])),
  );
}

export interface PipelineModel {
  /** The catalogue's entry for the model (its tokenizer's repo and commit). */
  entry: CatalogueEntry;
  /** The room's chain of stages now, in layer order, with each stage's peer. */
  stages: (StagePlacement & { name: string })[];
}

/**
 * Models of the catalogue that peers in the room can run as a pipeline now (a chain of stages covers every layer)
 * and that nobody shares whole (`sharedIds`: a whole model answers with one hop, not one per stage).
 */
export function pipelineModels(
  room: MeshRoom | null,
  entries: readonly CatalogueEntry[],
  sharedIds?: ReadonlySet<string>,
): PipelineModel[] {
  if (!room) return [];
  const peers = room.node.list();
  const whole = sharedIds ?? sharedWhole(room);
  const ids = new Set(peers.flatMap((p) => (p.capabilities?.pipeline ? [p.capabilities.pipeline.model] : [])));
  const names = new Map(peers.map((p) => [p.peerId, p.name] as const));
  return [...ids].flatMap((id) => {
    const entry = entries.find((e) => e.id === id);
    if (!entry || whole.has(id)) return [];
    const chain = room.node.pipelines.chain(id);
    if (!chain?.length) return [];
    return [{ entry, stages: chain.map((s) => ({ ...s, name: names.get(s.peerId) ?? 'a peer' })) }];
  });
}

export const layersText = ([from, to]: readonly [number, number]) => `layers ${from}–${to}`;

/** "Ada (layers 0–2) → Bob (layers 2–4)". */
export function stageChain(stages: PipelineModel['stages']): string {
  return stages.map((s) => `${s.name} (${layersText(s.layers)})`).join(' → ');
}

/** "across 2 peers: Ada (layers 0–2) → Bob (layers 2–4)". */
export function stagesText(stages: PipelineModel['stages']): string {
  return `across ${stages.length} peer${stages.length === 1 ? '' : 's'}: ${stageChain(stages)}`;
}

/** Whether a peer of the room this tab is in hosts a stage of a model now (re-rendered as peers change). */
export function useRoomHostsStages(): boolean {
  const room = useMeshRoom();
  return useSyncExternalStore(room?.subscribe ?? noSubscribe, () =>
    Boolean(room?.node.list().some((peer) => peer.capabilities?.pipeline)),
  );
}

/** The room's pipeline models for these catalogue entries, re-rendered as peers come, go and change. */
export function useRoomPipelines(entries: readonly CatalogueEntry[]): PipelineModel[] {
  const room = useMeshRoom();
  useSyncExternalStore(room?.subscribe ?? noSubscribe, room?.getSnapshot ?? noSnapshot);
  return pipelineModels(room, entries);
}
