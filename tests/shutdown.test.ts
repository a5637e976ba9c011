// Closing the server does not wait out CONNECTION_TIMEOUT_MS for connections with nothing in progress: a kept-alive
// one after its response, and one that never carried a request (a client's pool reconnecting after an aborted
// stream opens such a one; tests/openai-mesh.test.ts used to wait 60 s for it in its afterAll).
import { connect } from 'node:net';
import { expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

it('closes at once with an unused connection and a kept-alive one open, well within CONNECTION_TIMEOUT_MS', async () => {
  const db = await openTestDatabase('pglite');
  const app = await buildApp({ env: testEnv({ CONNECTION_TIMEOUT_MS: '60000' }), database: db.database });
  try {
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = new URL(base);
    const kept = await fetch(`${base}/api/health`);
    expect(kept.status).toBe(200);
    await kept.text();
    const unused = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => unused.once('connect', () => resolve()));
    const ended = new Promise<void>((resolve) => unused.once('close', () => resolve()));
    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    await ended;
  } finally {
    await app.close();
    await db.cleanup();
  }
}, 90_000);
