// The app's tRPC links against a real server that smooths its budgets (docs/SECURITY.md): a call refused for a
// moment is waited out and retried by itself, a refusal with a long wait is shown at once.
import { createTRPCClient } from '@trpc/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { appLinks } from '../src/client/lib/trpc.ts';
import { buildApp } from '../src/server/app.ts';
import type { AppRouter } from '../src/server/trpc/root.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

let db: TestDatabase;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  db = await openTestDatabase('pglite');
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
afterAll(async () => {
  await db.cleanup();
});

/** A listening server and the app's client for it; `statuses` collects the status of every API answer. */
async function serve(overrides: Record<string, string>) {
  const app = await buildApp({ env: testEnv(overrides), database: db.database });
  apps.push(app);
  const statuses: number[] = [];
  app.addHook('onResponse', async (request, reply) => {
    if (request.url.startsWith('/api/trpc/')) statuses.push(reply.statusCode);
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { client: createTRPCClient<AppRouter>({ links: appLinks(`${url}/api/trpc`) }), statuses };
}

describe("the app's tRPC client", () => {
  it('waits out a brief refusal (Retry-After 1 s) and retries, so a burst of its own calls all succeed', async () => {
    // Calls are smoothed to a full batch (10) per 250 ms: twenty at once go out as two batches, the second refused.
    const { client, statuses } = await serve({
      RATE_LIMIT_MAX: '600',
      RATE_LIMIT_BURST_SECONDS: '3',
      TRPC_MAX_BATCH_SIZE: '10',
    });
    // On a loaded machine the two batches can land in different windows and both pass: then try again, until one
    // was refused (what this test is about) and the client still got every answer.
    for (let round = 0; round < 5 && !statuses.includes(429); round++) {
      statuses.length = 0;
      const answers = await Promise.all(Array.from({ length: 20 }, () => client.health.query()));
      expect(answers.filter((answer) => answer.status === 'ok')).toHaveLength(20);
    }
    expect(statuses).toContain(429);
    expect(statuses.at(-1)).toBe(200);
  });

  it('shows a refusal with a long wait at once, without asking again', async () => {
    const { client, statuses } = await serve({ RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_MS: '60000' });
    await client.health.query();
    await client.health.query();
    const started = performance.now();
    await expect(client.health.query()).rejects.toThrow(/Too many/);
    expect(statuses).toEqual([200, 200, 429]);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
