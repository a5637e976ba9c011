import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { type TestDatabase, databaseKinds, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

describe.each(databaseKinds())('GET /api/health on %s', (kind) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(kind);
  });
  afterAll(() => db.cleanup());

  it('answers 200 with db ok while the database answers', async () => {
    const app = await buildApp({ env: testEnv(), database: db.database });
    for (const url of ['/api/health', '/api/health/ready']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode).toBe(200);
      expect(response.headers['cache-control']).toBe('no-store');
      expect(response.json()).toMatchObject({
        status: 'ok',
        db: 'ok',
        database: kind,
        dependencies: { database: { kind, state: 'up', since: expect.any(String) } },
        version: expect.any(String),
      });
      // No Redis configured: none reported.
      expect(response.json()).not.toHaveProperty('redis');
      expect(response.json().dependencies).not.toHaveProperty('redis');
    }
    const live = await app.inject({ method: 'GET', url: '/api/health/live' });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toMatchObject({ status: 'ok', uptimeSeconds: expect.any(Number) });
    await app.close();
  });

  it('answers 503 with db down once the database is closed, stays live, and refuses what needs it as retryable', async () => {
    const app = await buildApp({ env: testEnv(), database: db.database });
    const signedIn = await app.inject({
      method: 'POST',
      url: '/api/trpc/auth.guest',
      headers: { 'content-type': 'application/json' },
      payload: '{}',
    });
    const cookie = String(signedIn.headers['set-cookie']).split(';')[0] ?? '';
    await db.database.close();
    for (const url of ['/api/health', '/api/health/ready']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode).toBe(503);
      expect(response.headers['retry-after']).toMatch(/^\d+$/);
      expect(response.json()).toMatchObject({
        status: 'error',
        db: 'down',
        dependencies: { database: { state: 'down' } },
      });
    }
    // A supervisor must not restart a node because its database is away.
    expect((await app.inject({ method: 'GET', url: '/api/health/live' })).statusCode).toBe(200);

    const started = performance.now();
    const guest = await app.inject({
      method: 'POST',
      url: '/api/trpc/auth.guest',
      headers: { 'content-type': 'application/json' },
      payload: '{}',
    });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(guest.statusCode).toBe(503);
    expect(guest.headers['retry-after']).toMatch(/^\d+$/);
    expect(guest.json()).toMatchObject({
      error: {
        message: expect.stringMatching(/database is unavailable/),
        data: { code: 'SERVICE_UNAVAILABLE', unavailable: { dependency: 'database' } },
      },
    });
    // A session that cannot be checked is not answered as "signed out".
    const me = await app.inject({ method: 'GET', url: '/api/trpc/auth.me', headers: { cookie } });
    expect(me.statusCode, me.body).toBe(503);
    expect(me.json()).toMatchObject({ error: { data: { code: 'SERVICE_UNAVAILABLE' } } });
    await app.close();
  });
});
