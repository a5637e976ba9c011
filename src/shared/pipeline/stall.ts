// Which stage a pipeline job that stopped moving waits on, from what the requester knows and what the stages say of
// their caches (`pipe:status`): the stall watchdog of room-pipeline.ts replaces that stage (docs/pipeline.md,
// "Failover between peers").

/**
 * The stage a job that stopped moving waits on, from its positions end to end (`[queued, stage 0, ..., last stage,
 * sampled]`: what the requester handed the first stage, how far each stage's cache goes, null for no answer, and the
 * position of the last token that came back): the first that did not answer, else the first whose input is ahead of
 * its cache (it has frames to run and runs none), else the last stage if it ran the step but its token did not come
 * back; -1 when no stage has anything to do. A stage whose output never reaches the next looks like the next one
 * stalling: that one is replaced, and the replay comes from the stage before it over a new link.
 */
export function stalledStage(chain: readonly (number | null)[]): number {
  const stages = chain.slice(1, -1);
  const silent = stages.indexOf(null);
  if (silent >= 0) return silent;
  for (let i = 0; i < stages.length; i++) if ((chain[i] ?? 0) > (chain[i + 1] ?? 0)) return i;
  return (chain.at(-2) ?? 0) > (chain.at(-1) ?? 0) ? stages.length - 1 : -1;
}
