// Abuse resistance over HTTP, tried as an attacker would (docs/SECURITY.md): batches, rate-limit buckets,
// cross-site calls, Host names, forged X-Forwarded-For, source maps, the health check and the cookie's name.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { parseEnv } from '../src/server/env.ts';
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

async function app(overrides: Record<string, string> = {}, client: 'static' | 'none' = 'none') {
  const built = await buildApp({ env: testEnv(overrides), database: db.database, client });
  apps.push(built);
  return built;
}

/** A GET batch of `n` health queries, as httpBatchLink sends it. */
function healthBatch(n: number) {
  const paths = Array.from({ length: n }, () => 'health').join(',');
  const input = encodeURIComponent(JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [i, {}]))));
  return `/api/trpc/${paths}?batch=1&input=${input}`;
}

describe('batches', () => {
  it('refuses a tRPC batch longer than TRPC_MAX_BATCH_SIZE', async () => {
    const server = await app({ TRPC_MAX_BATCH_SIZE: '4' });
    expect((await server.inject(healthBatch(4))).statusCode).toBe(200);
    const tooLong = await server.inject(healthBatch(5));
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.body).toMatch(/batch/i);
  });

  it('counts every call of a batch against the rate limit, not the request once', async () => {
    const server = await app({ RATE_LIMIT_MAX: '6', TRPC_MAX_BATCH_SIZE: '10' });
    // Six calls in one request spend the whole per-IP budget of six calls...
    const first = await server.inject(healthBatch(6));
    expect(first.statusCode).toBe(200);
    // ...so the next call is refused, though only two HTTP requests were made.
    const second = await server.inject('/api/trpc/health');
    expect(second.statusCode).toBe(429);
    expect(second.headers['retry-after']).toMatch(/^\d+$/);
    expect(second.json()).toMatchObject({
      error: { message: expect.stringMatching(/Too many API calls from this address/) },
    });
  });
});

describe('budgets of costly procedures', () => {
  async function guest(server: FastifyInstance, remoteAddress = '127.0.0.1') {
    const response = await server.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {}, remoteAddress });
    return String(response.headers['set-cookie']).split(';')[0] ?? '';
  }
  const chat = (server: FastifyInstance, cookie: string, remoteAddress = '127.0.0.1') =>
    server.inject({
      method: 'POST',
      url: '/api/trpc/chat.send',
      headers: { cookie },
      remoteAddress,
      payload: { provider: 'stub', messages: [{ role: 'user', content: 'hi' }] },
    });

  it('holds a per-user chat budget, and per IP too, so new guests from one address buy no fresh budget', async () => {
    const server = await app({ CHATS_PER_USER_PER_MINUTE: '2', COSTLY_IP_FACTOR: '2' });
    const [ann, bob, cy] = [await guest(server), await guest(server), await guest(server)];
    expect([(await chat(server, ann)).statusCode, (await chat(server, ann)).statusCode]).toEqual([200, 200]);
    const third = await chat(server, ann);
    expect(third.statusCode).toBe(429);
    expect(third.headers['retry-after']).toMatch(/^\d+$/);
    expect(third.json()).toMatchObject({
      error: { message: expect.stringMatching(/^Too many chats: at most 2 per minute/) },
    });
    // Bob has a budget of his own, but the address's (2 x 2 chats) is then spent: Cy, a fresh guest, is refused.
    expect([(await chat(server, bob)).statusCode, (await chat(server, bob)).statusCode]).toEqual([200, 200]);
    const fresh = await chat(server, cy);
    expect(fresh.statusCode).toBe(429);
    expect(fresh.json()).toMatchObject({
      error: { message: expect.stringMatching(/^Too many chats from this address/) },
    });
    // Someone at another address is unaffected.
    const dee = await guest(server, '127.0.0.2');
    expect((await chat(server, dee, '127.0.0.2')).statusCode).toBe(200);
  });

  it('caps new guests per IP per hour', async () => {
    const server = await app({ GUEST_CREATIONS_PER_IP_PER_HOUR: '3' });
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await server.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {} })).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(
      (await server.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {}, remoteAddress: '127.0.0.2' }))
        .statusCode,
    ).toBe(200);
  });
});

describe('rate-limit buckets', () => {
  it('counts a percent-encoded API path in the API bucket, not the app files bucket', async () => {
    const server = await app({ RATE_LIMIT_MAX: '3' });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await server.inject('/%61pi/trpc/auth.me')).statusCode);
    // The app files' bucket is twenty times larger: had the raw URL chosen the bucket, all four would pass.
    expect(statuses.slice(0, 3).every((status) => status !== 429)).toBe(true);
    expect(statuses[3]).toBe(429);
  });

  it('answers a refusal only after RATE_LIMIT_DELAY_MS, so a flood slows to its connections', async () => {
    const server = await app({ RATE_LIMIT_MAX: '1', RATE_LIMIT_DELAY_MS: '400' });
    let started = performance.now();
    expect((await server.inject('/api/trpc/auth.me')).statusCode).toBe(200);
    expect(performance.now() - started).toBeLessThan(400);
    started = performance.now();
    expect((await server.inject('/api/trpc/auth.me')).statusCode).toBe(429);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
  });

  it('gives the health check a per-IP budget of its own', async () => {
    const server = await app({ RATE_LIMIT_MAX: '2' });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await server.inject('/api/health')).statusCode);
    expect(statuses).toEqual([200, 200, 429]);
    // Its own bucket: the API's budget is untouched.
    expect((await server.inject('/api/trpc/auth.me')).statusCode).toBe(200);
  });

  it('smooths every ceiling over its window: a burst past its share of a second is refused, app files apart', async () => {
    const dist = await mkdtemp(path.join(tmpdir(), 'mesh-dist-'));
    await mkdir(path.join(dist, 'assets'));
    await writeFile(path.join(dist, 'index.html'), '<!doctype html><title>Mesh NanoLLM</title>');
    await writeFile(path.join(dist, 'assets', 'app-abc123.js'), 'console.log(1)');
    // The stores end windows by the clock and by timers: both frozen, the whole burst falls in one window however
    // slow the machine (nothing below touches the database, whose client has timers of its own).
    vi.useFakeTimers({ now: new Date('2026-12-03T00:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    try {
      // 600 a minute, three seconds' worth per second: 8 requests per 250 ms window.
      const server = await app(
        { RATE_LIMIT_MAX: '600', RATE_LIMIT_BURST_SECONDS: '3', CLIENT_DIST_DIR: dist },
        'static',
      );
      const statuses = await Promise.all(
        Array.from({ length: 10 }, () => server.inject('/api/trpc/auth.me').then((reply) => reply.statusCode)),
      );
      expect(statuses.filter((status) => status === 200)).toHaveLength(8);
      const refused = await server.inject('/api/trpc/auth.me');
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.json()).toMatchObject({ error: 'RATE_LIMITED' });
      // App files have twenty times the ceiling, so twenty times the burst (150), untouched by the API's refusals.
      const files = await Promise.all(
        Array.from({ length: 160 }, () => server.inject('/assets/app-abc123.js').then((reply) => reply.statusCode)),
      );
      expect(files.filter((status) => status === 200)).toHaveLength(150);
      expect(files.filter((status) => status === 429)).toHaveLength(10);
      // The next window has its burst again, well inside the minute's 600.
      vi.advanceTimersByTime(251);
      expect((await server.inject('/api/trpc/auth.me')).statusCode).toBe(200);
    } finally {
      vi.useRealTimers();
      await rm(dist, { recursive: true, force: true });
    }
  });
});

describe('cross-site requests', () => {
  const chatStream = `/api/trpc/chat.stream?input=${encodeURIComponent(JSON.stringify({ provider: 'stub', messages: [{ role: 'user', content: 'spend' }] }))}`;

  it('refuses an API GET made by another site (a link, an image, a fetch), subscriptions included', async () => {
    const server = await app();
    const cases = [
      {
        'sec-fetch-site': 'cross-site',
        'sec-fetch-dest': 'empty',
        'sec-fetch-mode': 'cors',
        origin: 'https://evil.example',
      },
      { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'image', 'sec-fetch-mode': 'no-cors' },
      { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' },
      // Another origin of the same site (a sibling subdomain) is not this app either.
      { 'sec-fetch-site': 'same-site', 'sec-fetch-dest': 'empty', origin: 'https://other.localhost' },
      // Same origin, but a frame or a subresource, never the app's own fetch or EventSource.
      { 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'iframe' },
      { 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'image' },
    ];
    for (const headers of cases) {
      for (const url of [chatStream, '/api/trpc/auth.me']) {
        const response = await server.inject({ url, headers });
        expect({ headers, status: response.statusCode }).toEqual({ headers, status: 403 });
        expect(response.json()).toMatchObject({ error: 'CROSS_SITE' });
      }
    }
  });

  it("answers the app's own fetches and clients that send no fetch metadata", async () => {
    const server = await app({ PUBLIC_ORIGIN: 'https://mesh.example.org' });
    const fine = [
      { 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'cors' },
      // The configured public origin may be another site (the app served apart from the API).
      { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'empty', origin: 'https://mesh.example.org' },
      {},
    ];
    for (const headers of fine) {
      expect((await server.inject({ url: '/api/trpc/auth.me', headers })).statusCode).toBe(200);
    }
  });
});

describe('Host names', () => {
  it('refuses a Host this server does not serve (DNS rebinding), and serves its own names', async () => {
    const server = await app({ PUBLIC_ORIGIN: 'https://mesh.example.org', ALLOWED_HOSTS: 'box.lan' });
    for (const host of ['attacker.example', 'localhost.attacker.example', '127.0.0.1.nip.io', 'box.lan.evil']) {
      const response = await server.inject({ url: '/api/trpc/auth.me', headers: { host } });
      expect({ host, status: response.statusCode }).toEqual({ host, status: 421 });
    }
    for (const host of [
      'localhost:8787',
      '127.0.0.1:8787',
      '[::1]:8787',
      '192.168.1.20:8787',
      'mesh.example.org',
      'box.lan:8787',
      'LOCALHOST',
    ]) {
      const response = await server.inject({ url: '/api/trpc/auth.me', headers: { host } });
      expect({ host, status: response.statusCode }).toEqual({ host, status: 200 });
    }
  });
});

describe('proxies', () => {
  it('takes the client address from the configured hops only: a forged X-Forwarded-For buys no fresh budget', async () => {
    const server = await app({ TRUST_PROXY: '1', RATE_LIMIT_MAX: '2' });
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      // The client forges the leftmost entry each time; the proxy appends the address it saw (203.0.113.9).
      const response = await server.inject({
        url: '/api/trpc/auth.me',
        headers: { 'x-forwarded-for': `10.0.0.${i}, 203.0.113.9` },
      });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([200, 200, 429]);
    // Another client behind the same proxy has a budget of its own.
    expect(
      (await server.inject({ url: '/api/trpc/auth.me', headers: { 'x-forwarded-for': '203.0.113.10' } })).statusCode,
    ).toBe(200);
  });

  it('ignores X-Forwarded-For from an address that is not a listed proxy', async () => {
    const server = await app({ TRUST_PROXY: '10.1.0.0/16', RATE_LIMIT_MAX: '2' });
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const response = await server.inject({
        url: '/api/trpc/auth.me',
        remoteAddress: '198.51.100.7',
        headers: { 'x-forwarded-for': `203.0.113.${i}` },
      });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('reads TRUST_PROXY as false, a hop count or proxy addresses, never "every hop"', () => {
    expect(parseEnv({ TRUST_PROXY: 'false' }).TRUST_PROXY).toBe(false);
    expect(parseEnv({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(1);
    expect(parseEnv({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    expect(parseEnv({ TRUST_PROXY: '10.0.0.1, 10.2.0.0/16,loopback' }).TRUST_PROXY).toEqual([
      '10.0.0.1',
      '10.2.0.0/16',
      'loopback',
    ]);
    expect(() => parseEnv({ TRUST_PROXY: '10.0.0.1, not-an-address' })).toThrowError(
      /TRUST_PROXY=.*not an address: not-an-address/,
    );
    expect(() => parseEnv({ TRUST_PROXY: '99' })).toThrowError(/at most 16 proxy hops/);
  });
});

describe('production hygiene', () => {
  let dist: string;
  beforeAll(async () => {
    dist = await mkdtemp(path.join(tmpdir(), 'mesh-dist-'));
    await mkdir(path.join(dist, 'assets'));
    await writeFile(path.join(dist, 'index.html'), '<!doctype html><title>Mesh NanoLLM</title>');
    await writeFile(
      path.join(dist, 'assets', 'index-abc123.js'),
      'console.log(1)\n//# sourceMappingURL=index-abc123.js.map',
    );
    await writeFile(path.join(dist, 'assets', 'index-abc123.js.map'), '{"version":3,"sources":["secret.ts"]}');
  });
  afterAll(() => rm(dist, { recursive: true, force: true }));

  it('never serves a source map, even one left in dist/', async () => {
    const server = await app({ CLIENT_DIST_DIR: dist }, 'static');
    expect((await server.inject('/assets/index-abc123.js')).statusCode).toBe(200);
    const map = await server.inject('/assets/index-abc123.js.map');
    expect(map.statusCode).toBe(404);
    expect(map.body).not.toContain('secret.ts');
  });

  it('names no commit in the health check unless the operator asks', async () => {
    const quiet = await app({ GIT_COMMIT: 'abcdef1234567' });
    expect((await quiet.inject('/api/health')).json()).toMatchObject({ status: 'ok', commit: null });
    expect(JSON.stringify((await quiet.inject('/api/trpc/health')).json())).not.toContain('abcdef1234567');
    const asked = await app({ GIT_COMMIT: 'abcdef1234567', HEALTH_SHOW_COMMIT: 'true' });
    expect((await asked.inject('/api/health')).json()).toMatchObject({ commit: 'abcdef1234567' });
  });

  it('names the session cookie __Host- and marks it Secure when the public origin is https', async () => {
    const server = await app({ PUBLIC_ORIGIN: 'https://mesh.example.org' });
    const guest = await server.inject({ method: 'POST', url: '/api/trpc/auth.guest', payload: {} });
    const setCookie = String(guest.headers['set-cookie']);
    expect(setCookie).toMatch(/^__Host-mesh_session=[\w-]+\.[\w-]+;/);
    expect(setCookie).toMatch(/; Secure/);
    expect(setCookie).toMatch(/; Path=\//);
    expect(setCookie).not.toMatch(/Domain=/);
    const cookie = setCookie.split(';')[0] ?? '';
    expect((await server.inject({ url: '/api/trpc/auth.me', headers: { cookie } })).json()).toMatchObject({
      result: { data: { kind: 'GUEST' } },
    });
    // The unprefixed name (which a sibling subdomain could set) is not read.
    const tossed = cookie.replace(/^__Host-/, '');
    expect((await server.inject({ url: '/api/trpc/auth.me', headers: { cookie: tossed } })).json()).toMatchObject({
      result: { data: null },
    });
  });
});
