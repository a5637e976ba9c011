// Which route answers: the person's choice ("Answer with") and Auto's policy.
import { type ChatProviderId, ChatProviderIdSchema } from '../../../shared/schemas/chat.ts';

export type Route =
  { kind: 'auto' } | { kind: 'device' } | { kind: 'mesh' } | { kind: 'cloud'; provider: ChatProviderId };
export type ResolvedRoute = Exclude<Route, { kind: 'auto' }>;

/** The value of the `chat-route` select: auto, device, mesh, or a provider's id. */
export function routeValue(route: Route): string {
  return route.kind === 'cloud' ? route.provider : route.kind;
}

export function parseRoute(value: string): Route {
  if (value === 'auto' || value === 'device' || value === 'mesh') return { kind: value };
  return { kind: 'cloud', provider: ChatProviderIdSchema.parse(value) };
}

export interface RouteOptions {
  modelLoaded: boolean;
  /** How many models peers share now. */
  shared: number;
  /** This device's measured tokens/s, and the fastest sharing peer's (0 when none measured). */
  mine: number | null;
  fastest: number;
  /** The cloud provider Auto falls back on, if any. */
  autoCloud: ChatProviderId | undefined;
}

/**
 * Auto: this device when it runs its model well (not less than half as fast as the fastest peer sharing one, or
 * nobody shares), else a peer that shares one, else the first cloud provider this person may use.
 */
export function resolveRoute(route: Route, options: RouteOptions): ResolvedRoute {
  if (route.kind !== 'auto') return route;
  const { modelLoaded, shared, mine, fastest, autoCloud } = options;
  if (modelLoaded && (!shared || mine === null || fastest === 0 || mine >= fastest / 2)) return { kind: 'device' };
  if (shared) return { kind: 'mesh' };
  if (autoCloud) return { kind: 'cloud', provider: autoCloud };
  throw new Error(
    'Auto found nothing to answer with: load a model, join a room where someone shares one, or go online for a cloud provider',
  );
}
