// What the server recorded of a room's mesh jobs, and this person's latest ones there.
import { api } from '../../lib/trpc.ts';

export const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`;

/** What the server recorded of this room's mesh jobs, and this person's latest ones; nothing asked until `enabled`. */
export function RoomStats({ room, enabled = true }: { room: string; enabled?: boolean }) {
  const stats = api.jobs.roomStats.useQuery({ room }, { refetchInterval: 5000, retry: false, enabled });
  const mine = api.jobs.list.useQuery(undefined, { refetchInterval: 5000, retry: false, enabled });
  const recent = (mine.data ?? []).filter((job) => job.room?.slug === room).slice(0, 5);
  if (!stats.data) return null;
  const { jobs, tokensOut, failovers, mismatches, servers } = stats.data;
  const completed = jobs.COMPLETED ?? 0;
  return (
    <div className="flex flex-col gap-1">
      <p className="m-0 text-sm text-muted" data-testid="room-stats">
        {plural(completed, 'answer')} served in this room · {plural(tokensOut, 'token')} ·{' '}
        {plural(failovers, 'failover')} · {plural(mismatches, 'failed spot check')}
        {servers.length > 0 && ` · most by ${servers.map((s) => `${s.name} (${s.jobs})`).join(', ')}`}
      </p>
      {recent.length > 0 && (
        <details>
          <summary className="cursor-pointer text-sm">Your latest mesh jobs here</summary>
          <ul className="m-0 mt-1 pl-5 text-sm" data-testid="my-jobs">
            {recent.map((job) => (
              <li key={job.id}>
                {job.outcome.toLowerCase()} · {job.modelId} · {job.server?.displayName ?? 'a peer that left'} ·{' '}
                {job.tokensOut} tokens
                {job.tokensPerSecond ? ` · ${job.tokensPerSecond.toFixed(1)} tok/s` : ''}
                {job.failoverCount ? ` · ${job.failoverCount} failover${job.failoverCount === 1 ? '' : 's'}` : ''}
                {job.checkResult ? ` · check: ${job.checkResult.toLowerCase()}` : ''}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}
