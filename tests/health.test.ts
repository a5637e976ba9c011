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
    const response = await app.inject({ method: 'GET', url: '/api/health' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.json()).toMatchObject({ status: 'ok', db: 'ok', database: kind, version: expect.any(String) });
    await app.close();
  });

  it('answers 503 with db down once the database is closed', async () => {
    const app = await buildApp({ env: testEnv(), database: db.database });
    await db.database.close();
    const response = await app.inject({ method: 'GET', url: '/api/health' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ status: 'error', db: 'down' });
    await app.close();
  });
});
