// The cast of the tests of the OpenAI-compatible API in private rooms (tests/openai-rooms.test.ts,
// tests/added-model-mesh.test.ts): three accounts made in the app's database, each with an API key and the official
// `openai` client on the listening app; Ann's private room, which Bob joined with its invite and Cyd did not; and a
// session of Ann's for her headless peer.
import OpenAI from 'openai';
import type { PrismaClient } from '../../src/server/db/client.ts';
import { createApiKey } from '../../src/server/services/api-keys.ts';
import { createRoom, joinRoom } from '../../src/server/services/room.ts';
import { createSession, sessionPolicy } from '../../src/server/services/session.ts';

export type RoomCast = 'ann' | 'bob' | 'cyd';

export interface PrivateRoom {
  clients: Record<RoomCast, OpenAI>;
  ids: Record<RoomCast, string>;
  /** The room's slug, for `X-Mesh-Room`. */
  room: string;
  /** A session token of Ann's (her peer's `token`, or her cookie through sessionCookieHeader). */
  annToken: string;
}

/** Makes the cast on the app listening at `base` (its database `prisma`). */
export async function privateRoomCast(prisma: PrismaClient, base: string): Promise<PrivateRoom> {
  const clients = {} as Record<RoomCast, OpenAI>;
  const ids = {} as Record<RoomCast, string>;
  for (const name of ['ann', 'bob', 'cyd'] as const) {
    const user = await prisma.user.create({
      data: { kind: 'ACCOUNT', username: name, displayName: name },
      select: { id: true },
    });
    ids[name] = user.id;
    const { key } = await createApiKey(prisma, user.id, 'key');
    clients[name] = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
  }
  const created = await createRoom(prisma, ids.ann, { name: 'Lab', visibility: 'PRIVATE', capacity: 8 });
  await joinRoom(prisma, ids.bob, created.slug, created.inviteCode ?? undefined);
  const { token } = await createSession(prisma, ids.ann, sessionPolicy(14, 90));
  return { clients, ids, room: created.slug, annToken: token };
}

/** Every model `GET /v1/models` lists to `client`'s key, through the client's pages. */
export async function listedModels(client: OpenAI) {
  const models = [];
  for await (const model of client.models.list()) models.push(model);
  return models;
}
