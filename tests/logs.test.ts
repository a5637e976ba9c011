// What the real server process writes to its log (docs/SECURITY.md): request lines name the route without its
// query string, and no prompt, answer, session token, cookie or password reaches a line, at debug level too.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatClient, streamChat } from './support/chat-client.ts';
import { type ServerProcess, startServer } from './support/server-process.ts';

let dir: string;
let server: ServerProcess;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-logs-'));
  server = await startServer({ DATA_DIR: dir, CLIENT_DIST_DIR: path.join(dir, 'no-client'), LOG_LEVEL: 'debug' });
});
afterAll(async () => {
  if (server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe('the server log', () => {
  it('holds no prompt, answer, token, cookie or password after chats over SSE and HTTP', async () => {
    const password = 'Correct-Horse-Battery-7';
    const signup = await fetch(`${server.url}/api/trpc/auth.signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'logcheck', password }),
    });
    expect(signup.status).toBe(200);
    const cookie = (signup.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const token = cookie.split('=')[1] ?? '';
    expect(token.length).toBeGreaterThan(20);
    // A wrong password too: failures are logged, their inputs are not.
    const wrongPassword = 'Wrong-Horse-Battery-8';
    const login = await fetch(`${server.url}/api/trpc/auth.login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'logcheck', password: wrongPassword }),
    });
    expect(login.status).toBe(401);

    const client = chatClient(server.url, cookie);
    const streamPrompt = 'zanzibar quokka streamed secret';
    const streamed = await streamChat(client, {
      provider: 'stub',
      messages: [{ role: 'user', content: streamPrompt }],
    });
    expect(streamed.error).toBeNull();
    const streamedAnswer = streamed.deltas.join('');
    expect(streamedAnswer).toContain('zanzibar');

    const sentPrompt = 'ocelot marzipan posted secret';
    const sent = await client.chat.send.mutate({ provider: 'stub', messages: [{ role: 'user', content: sentPrompt }] });
    expect(sent.text).toContain('ocelot');

    // Also a prompt in a query string that fails validation, and one the route refuses (cross-site).
    const badInput = encodeURIComponent(
      JSON.stringify({ provider: 'stub', messages: [{ role: 'user', content: 'pelican invalid secret' }], extra: 1 }),
    );
    expect((await fetch(`${server.url}/api/trpc/chat.send?input=${badInput}`, { headers: { cookie } })).status).toBe(
      405,
    );
    // A route that does not exist, with a secret in its query string (Fastify's own "not found" line names the URL).
    expect((await fetch(`${server.url}/api/nowhere?input=pelican`, { headers: { cookie } })).status).toBe(404);
    const badQuery = encodeURIComponent(JSON.stringify({ room: 'pelican invalid secret' }));
    expect((await fetch(`${server.url}/api/trpc/room.members?input=${badQuery}`, { headers: { cookie } })).status).toBe(
      400,
    );
    expect(
      (
        await fetch(`${server.url}/api/trpc/chat.stream?input=${badInput}`, {
          headers: { cookie, 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'image' },
        })
      ).status,
    ).toBe(403);

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const log = server.output();
    // The requests were logged, by route.
    expect(log).toMatch(/"url":"\/api\/trpc\/chat\.stream"/);
    expect(log).toMatch(/"url":"\/api\/trpc\/chat\.send(\?|")/);
    for (const secret of [
      'zanzibar',
      'ocelot',
      'pelican',
      streamedAnswer.slice(0, 24),
      sent.text.slice(0, 24),
      token,
      token.split('.')[1] ?? token,
      password,
      wrongPassword,
      'input=',
      'mesh_session',
    ]) {
      expect({ secret, found: log.includes(secret) }).toEqual({ secret, found: false });
    }
  });
});
