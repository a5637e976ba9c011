// Starts an answer on the route Auto or the person chose: this device's model, a peer of the room (a model shared
// whole, else one its peers run as a pipeline), or a cloud provider.
import type { EngineMessage } from '../../../../shared/engine-protocol.ts';
import type { ChatProviderInfo } from '../../../../shared/schemas/chat.ts';
import type { MeshRoom } from '../../mesh/mesh-store.ts';
import type { ActiveModel } from '../../models/model-store.ts';
import type { ResolvedRoute } from '../route.ts';
import { type ChatSettings, cloudSampling, engineSampling } from '../settings.ts';
import type { Answer } from './answer.ts';
import { cloudAnswer } from './cloud.ts';
import { deviceAnswer } from './device.ts';
import { type SharedModel, meshAnswer } from './mesh.ts';
import { type PipelineModel, pipelineAnswer } from './pipeline.ts';

export interface RouteContext {
  loaded: ActiveModel | null;
  meshRoom: MeshRoom | null;
  shared: SharedModel[];
  /** Models the room's peers run as a pipeline (none of them shared whole). */
  pipelines: PipelineModel[];
  usableProviders: ChatProviderInfo[];
}

export function startAnswer(
  target: ResolvedRoute,
  prompt: EngineMessage[],
  settings: ChatSettings,
  context: RouteContext,
): Answer {
  const { loaded, meshRoom, shared, pipelines, usableProviders } = context;
  if (target.kind === 'device') {
    if (!loaded) throw new Error('Load a model on the Models screen first, or pick a cloud provider');
    return deviceAnswer(loaded, prompt, engineSampling(settings));
  }
  if (target.kind === 'mesh') {
    if (!meshRoom) throw new Error('Join a room on the Rooms screen to ask its peers');
    // The chosen model, else the most shared one, else one the room runs across its peers.
    const whole = shared.find((m) => m.ref.id === settings.model);
    const pipeline = pipelines.find((m) => m.entry.id === settings.model);
    if (!whole && pipeline) return pipelineAnswer(meshRoom, pipeline, prompt, engineSampling(settings));
    const model = (whole ?? shared[0])?.ref;
    if (model) return meshAnswer(meshRoom, model, prompt, engineSampling(settings));
    if (pipelines[0]) return pipelineAnswer(meshRoom, pipelines[0], prompt, engineSampling(settings));
    throw new Error(`Nobody in room ${meshRoom.room} shares a model now: load one here, or pick another route`);
  }
  const provider = usableProviders.find((p) => p.id === target.provider);
  // A model chosen for another provider (or route) is not this one's: its default answers instead.
  const model =
    provider && (provider.models === null || provider.models.includes(settings.model)) ? settings.model : '';
  return cloudAnswer(
    { provider: target.provider, label: provider?.label ?? target.provider, model },
    prompt,
    cloudSampling(settings),
  );
}
