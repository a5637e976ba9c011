// The PWA and the API share one origin: built files in production, Vite's dev server in development.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { type TestDatabase, openTestDatabase } from './support/database.ts';
import { testEnv } from './support/env.ts';

let db: TestDatabase;
let dist: string;

beforeAll(async () => {
  db = await openTestDatabase('pglite');
  dist = await mkdtemp(path.join(tmpdir(), 'mesh-dist-'));
  await mkdir(path.join(dist, 'assets'));
  await writeFile(path.join(dist, 'index.html'), '<!doctype html><title>Mesh NanoLLM</title>');
  await writeFile(path.join(dist, 'assets', 'index-abc123.js'), 'console.log(1)');
  await writeFile(path.join(dist, 'sw.js'), 'self.addEventListener("install", () => {})');
});
afterAll(async () => {
  await db.cleanup();
  await rm(dist, { recursive: true, force: true });
});

describe('production client serving', () => {
  it('serves the shell, immutable hashed assets, a revalidated service worker, and SPA routes', async () => {
    const app = await buildApp({ env: testEnv({ CLIENT_DIST_DIR: dist }), database: db.database, client: 'static' });
    const shell = await app.inject('/');
    expect(shell.statusCode).toBe(200);
    expect(shell.body).toContain('<title>Mesh NanoLLM</title>');
    expect(shell.headers['cache-control']).toBe('no-cache');

    const asset = await app.inject('/assets/index-abc123.js');
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await app.inject('/sw.js')).headers['cache-control']).toBe('no-cache');

    const deepLink = await app.inject('/rooms/some-room');
    expect(deepLink.statusCode).toBe(200);
    expect(deepLink.body).toContain('<title>Mesh NanoLLM</title>');
    // The Models screen shares its first segment with the model files' route, which keeps its JSON 404s.
    expect((await app.inject('/models')).body).toContain('<title>Mesh NanoLLM</title>');
    expect((await app.inject('/models/org/none/resolve/main/config.json')).json()).toMatchObject({
      error: expect.any(String),
    });
    await app.close();
  });

  it('answers unknown API paths and missing files with a JSON 404, not the shell', async () => {
    const app = await buildApp({ env: testEnv({ CLIENT_DIST_DIR: dist }), database: db.database, client: 'static' });
    for (const url of ['/api/nope', '/models/x/resolve/main/y.onnx', '/assets/missing.js']) {
      const response = await app.inject(url);
      expect(response.statusCode, url).toBe(404);
      expect(response.json()).toMatchObject({ error: 'NOT_FOUND' });
    }
    await app.close();
  });

  it("counts the app's files apart from the API, with a larger budget per address", async () => {
    const app = await buildApp({
      env: testEnv({ CLIENT_DIST_DIR: dist, RATE_LIMIT_MAX: '5' }),
      database: db.database,
      client: 'static',
    });
    // Far more app files than the API's budget: a room of people behind one address loading the app at once.
    const files = await Promise.all(
      Array.from({ length: 60 }, (_, i) => app.inject(i % 2 ? '/assets/index-abc123.js' : '/rooms/global')),
    );
    expect(files.map((response) => response.statusCode)).toEqual(files.map(() => 200));
    // The API keeps its own budget, untouched by those, and refuses past it.
    const api = [];
    for (let i = 0; i < 6; i++)
      api.push((await app.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {} })).statusCode);
    expect(api.slice(0, 5).every((code) => code !== 429)).toBe(true);
    expect(api[5]).toBe(429);
    // App files have a ceiling too (20 times the API's).
    // (One at a time: the limiter's in-memory store counts a burst of concurrent requests before it checks any.)
    const more = [];
    for (let i = 0; i < 50; i++) more.push((await app.inject('/assets/index-abc123.js')).statusCode);
    expect(more.filter((code) => code === 429).length).toBe(10);
    await app.close();
  });
});

describe('development client serving', () => {
  it('serves the app through Vite with hot reload on the same origin as the API', async () => {
    const app = await buildApp({ env: testEnv(), database: db.database, client: 'vite' });
    const page = await app.inject('/');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('/@vite/client');
    expect((await app.inject('/api/health')).json()).toMatchObject({ db: 'ok' });
    await app.close();
  });
});
