// The per-address share of the server, on a real Fastify instance with a route whose answers the test releases.
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { fairSharePlugin } from './fair-share.ts';

let app: FastifyInstance;
afterEach(() => app.close());

/** An app whose `/slow` answers only when the test calls `finish()`; `started` counts the requests it began. */
async function slowApp(inFlight: number, queued: number) {
  app = Fastify();
  await app.register(fairSharePlugin, { env: { REQUESTS_IN_FLIGHT_PER_IP: inFlight, REQUESTS_QUEUED_PER_IP: queued } });
  const state = { started: 0, waiting: [] as Array<() => void> };
  app.get('/slow', async () => {
    state.started++;
    await new Promise<void>((resolve) => state.waiting.push(resolve));
    return { ok: true };
  });
  app.get('/fast', async () => ({ ok: true }));
  const finish = () => state.waiting.splice(0).forEach((resolve) => resolve());
  return { state, finish };
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
};

describe('fair share per address', () => {
  it('works on at most N requests of one address at once, queues the rest, and serves other addresses meanwhile', async () => {
    const { state, finish } = await slowApp(2, 10);
    const flood = Array.from({ length: 5 }, () => app.inject({ url: '/slow', remoteAddress: '127.0.0.2' }));
    await until(() => state.started === 2);
    // Another address is not queued behind the flood.
    expect((await app.inject({ url: '/fast', remoteAddress: '127.0.0.3' })).statusCode).toBe(200);
    // Nor is it limited by it: its own slow request starts at once.
    const other = app.inject({ url: '/slow', remoteAddress: '127.0.0.3' });
    await until(() => state.started === 3);
    // The flooding address's third request starts only when one of its first two is answered.
    finish();
    await until(() => state.started === 5);
    finish();
    await until(() => state.started === 6);
    finish();
    const answers = await Promise.all([...flood, other]);
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 200, 200, 200, 200, 200]);
  });

  it('refuses past the queue with 429, and frees the address entirely once it is done', async () => {
    const { state, finish } = await slowApp(1, 1);
    const first = app.inject({ url: '/slow', remoteAddress: '127.0.0.2' });
    await until(() => state.started === 1);
    const second = app.inject({ url: '/slow', remoteAddress: '127.0.0.2' });
    const third = app.inject({ url: '/slow', remoteAddress: '127.0.0.2' });
    // One of the two waits its turn; the queue holds one, so the other is refused at once.
    const refused = await Promise.race([second, third]);
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ error: 'RATE_LIMITED' });
    finish();
    await until(() => state.started === 2);
    finish();
    const answers = await Promise.all([first, second, third]);
    expect(answers.map((answer) => answer.statusCode).sort()).toEqual([200, 200, 429]);
    // Nothing is left held: a new request of that address starts at once.
    expect((await app.inject({ url: '/fast', remoteAddress: '127.0.0.2' })).statusCode).toBe(200);
  });
});
