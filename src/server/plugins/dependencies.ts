// The services this node depends on (the database; Redis when REDIS_URL is set), for the health check and the log:
// each going away and coming back is logged once, however many requests it refuses meanwhile.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Dependency } from '../dependencies/dependency.ts';

export interface Dependencies {
  readonly database: Dependency;
  /** Set by the socket plugin when REDIS_URL is. */
  readonly redis: Dependency | null;
  /** Adds a dependency (its transitions are logged from now on). */
  add(dependency: Dependency): void;
  all(): Dependency[];
}

declare module 'fastify' {
  interface FastifyInstance {
    dependencies: Dependencies;
  }
}

export const dependenciesPlugin = fp(
  async (app: FastifyInstance) => {
    const stops: (() => void)[] = [];
    const registry = new Map<Dependency['name'], Dependency>();
    const add = (dependency: Dependency) => {
      registry.set(dependency.name, dependency);
      stops.push(
        dependency.onChange((change) => {
          if (change.state === 'down') {
            app.log.warn(
              { dependency: change.name, err: change.error },
              `${change.name} went away: requests that need it are refused (503, UNAVAILABLE) until it is back`,
            );
          } else {
            app.log.info(
              { dependency: change.name, downForMs: change.downForMs },
              `${change.name} is back after ${(change.downForMs / 1000).toFixed(1)} s`,
            );
          }
        }),
      );
    };
    add(app.database.availability);
    app.decorate('dependencies', {
      get database() {
        return app.database.availability;
      },
      get redis() {
        return registry.get('redis') ?? null;
      },
      add,
      all: () => [...registry.values()],
    } satisfies Dependencies);
    app.addHook('onClose', async () => {
      for (const stop of stops.splice(0)) stop();
    });
  },
  { name: 'dependencies', dependencies: ['db'] },
);
