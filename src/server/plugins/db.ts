import fp from 'fastify-plugin';
import type { Database } from '../db/client.ts';

declare module 'fastify' {
  interface FastifyInstance {
    database: Database;
  }
}

export interface DbPluginOptions {
  database: Database;
  /** Close the database when the app closes (true when buildApp opened it). */
  owned: boolean;
}

export const dbPlugin = fp<DbPluginOptions>(
  async (app, { database, owned }) => {
    app.decorate('database', database);
    if (owned) {
      // Runs after the server stopped accepting and in-flight requests finished (Fastify closes routes first),
      // so every acknowledged write is committed before the database closes.
      app.addHook('onClose', async () => {
        await database.close();
        app.log.info('database closed');
      });
    }
  },
  { name: 'db' },
);
