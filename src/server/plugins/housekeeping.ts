// Purges expired sessions and idle guests on a timer (src/server/services/retention.ts says what goes).
import fp from 'fastify-plugin';
import { unavailability } from '../dependencies/dependency.ts';
import type { Env } from '../env.ts';
import { purgeStale } from '../services/retention.ts';

// Shortly after start rather than at once: start-up (migrations, a restart's reconnect burst) comes first.
const FIRST_RUN_DELAY_MS = 30_000;

export const housekeepingPlugin = fp<{ env: Pick<Env, 'GUEST_RETENTION_DAYS' | 'HOUSEKEEPING_INTERVAL_MS'> }>(
  async (app, { env }) => {
    const interval = env.HOUSEKEEPING_INTERVAL_MS;
    if (interval === 0) return;
    let running: Promise<void> | null = null;
    const run = () => {
      // One run at a time: a slow one is not stacked on.
      running ??= purgeStale(app.database.prisma, { guestRetentionDays: env.GUEST_RETENTION_DAYS })
        .then((purged) => {
          if (purged.sessions > 0 || purged.guests > 0)
            app.log.info(purged, 'housekeeping purged expired sessions and idle guests');
        })
        .catch((error: unknown) => {
          // The database being down is logged once as an outage; the next run purges what this one could not.
          if (unavailability(error)) app.log.debug('housekeeping skipped: the database is unavailable');
          else app.log.error({ err: error }, 'housekeeping failed');
        })
        .finally(() => {
          running = null;
        });
    };
    let first: NodeJS.Timeout | undefined;
    let timer: NodeJS.Timeout | undefined;
    app.addHook('onReady', async () => {
      // unref'd: the timers never keep the process alive on their own.
      first = setTimeout(run, Math.min(FIRST_RUN_DELAY_MS, interval)).unref();
      timer = setInterval(run, interval).unref();
    });
    // preClose: before the database closes (onClose), so a run under way finishes on an open connection.
    app.addHook('preClose', async () => {
      clearTimeout(first);
      clearInterval(timer);
      await running;
    });
  },
  { name: 'housekeeping', dependencies: ['db'] },
);
