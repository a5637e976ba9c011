// A room survives its server restarting: two headless peers (werift) in the global room lose the signaling
// server (SIGTERM), reconnect by themselves when it is back on the same address, join the room again with new
// peer ids, find each other over new data channels, and serve a job across.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadlessPeer } from '../src/peer/headless-peer.ts';
import { type ServerProcess, freePort, startServer } from './support/server-process.ts';

let dir: string;
let env: Record<string, string>;
let server: ServerProcess;
const peers: HeadlessPeer[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-reconnect-'));
  env = { DATA_DIR: path.join(dir, 'data'), CLIENT_DIST_DIR: path.join(dir, 'none'), PORT: String(await freePort()) };
  server = await startServer(env);
}, 60_000);

afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.stop()));
  server?.child.kill('SIGTERM');
  await server?.exited;
  await rm(dir, { recursive: true, force: true });
});

/** The peers `peer` has an open channel with and a hello from. */
const seen = (peer: HeadlessPeer) =>
  (peer.node?.list() ?? []).filter((other) => other.capabilities?.sharing).map((other) => other.name);

describe('a room across a server restart', () => {
  it('comes back by itself: the peers rejoin, reconnect to each other and serve jobs again', async () => {
    for (const name of ['Ash', 'Bay']) {
      const peer = new HeadlessPeer({
        server: server.url,
        room: 'global',
        model: 'nano-shakespeare',
        name,
        cacheDir: path.join(dir, 'cache'),
      });
      peers.push(peer);
      await peer.start();
    }
    const [ash, bay] = peers as [HeadlessPeer, HeadlessPeer];
    await expect.poll(() => [seen(ash), seen(bay)], { timeout: 30_000 }).toEqual([['Bay'], ['Ash']]);
    const before = ash.node?.list()[0]?.peerId;

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    // The data channels outlive the signaling server; what matters is that the room forms again after it.
    server = await startServer(env);
    await expect
      .poll(() => ash.node?.list()[0]?.peerId !== before && [seen(ash), seen(bay)], { timeout: 60_000 })
      .toEqual([['Bay'], ['Ash']]);

    const model = ash.node?.capabilities().models[0];
    if (!model) throw new Error('Ash has no model');
    const outcome = await ash.node?.requester.run({
      model,
      messages: [{ role: 'user', content: 'Speak' }],
      sampling: { temperature: 0, topP: 1, maxNewTokens: 8, seed: 1 },
      onToken: () => {},
    }).result;
    expect(outcome?.servedBy.map((peer) => peer.name)).toEqual(['Bay']);
    expect(outcome?.tokenIds.length).toBeGreaterThan(0);
  }, 120_000);
});
