// Accounts' conversations on the server (conversation.list/byId/append/remove): every finished turn is appended by
// the client with conversation.append, whichever route answered (chat.stream saves nothing); guests, other
// accounts and turns past CONVERSATION_MAX_BYTES_PER_USER are refused.
import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import { chatClient } from './support/chat-client.ts';
import { testEnv } from './support/env.ts';
import { useListeningApp } from './support/listening-app.ts';
import { guestCookie } from './support/server-process.ts';

const fixture = useListeningApp();
const account = async (username: string, url?: string) => (await fixture.account(username, url)).client;

const codeOf = (error: unknown) =>
  error instanceof TRPCClientError ? (error.data as { code?: string } | undefined)?.code : String(error);

describe('conversations on the server', () => {
  it('appends device turns, continues with a cloud answer, lists newest first and reads back in order', async () => {
    const client = await account('turing');
    const answer = {
      content: 'A pleasure.',
      route: 'LOCAL' as const,
      modelId: 'nano-shakespeare',
      backend: 'wasm' as const,
      ttftMs: 12,
      tokensPerSecond: 41.5,
      tokensOut: 7,
    };
    const { id } = await client.conversation.append.mutate({
      messages: [{ role: 'user', content: 'Good morrow' }],
      answer,
    });
    const older = await client.conversation.append.mutate({
      messages: [{ role: 'user', content: 'An older chat' }],
      answer,
    });
    // Continue the first one on the cloud (stub): the chat answers, conversation.append keeps the turn.
    const messages = [
      { role: 'user' as const, content: 'Good morrow' },
      { role: 'assistant' as const, content: 'A pleasure.' },
      { role: 'user' as const, content: 'And now?' },
    ];
    const cloud = await client.chat.send.mutate({ provider: 'stub', messages });
    const continued = await client.conversation.append.mutate({
      conversationId: id,
      messages,
      answer: { content: cloud.text, route: 'CLOUD', provider: 'stub', modelId: cloud.model },
    });
    expect(continued.id).toBe(id);

    const list = await client.conversation.list.query();
    expect(list.map((c) => c.id)).toEqual([id, older.id]);
    const read = await client.conversation.byId.query({ id });
    expect(read.title).toBe('Good morrow');
    expect(read.messages.map((m) => [m.role, m.route, m.backend])).toEqual([
      ['USER', null, null],
      ['ASSISTANT', 'LOCAL', 'wasm'],
      ['USER', null, null],
      ['ASSISTANT', 'CLOUD', null],
    ]);
    expect(read.messages[1]).toMatchObject({
      content: 'A pleasure.',
      modelId: 'nano-shakespeare',
      ttftMs: 12,
      tokensPerSecond: 41.5,
    });
    expect(read.messages[3]).toMatchObject({ content: cloud.text, provider: 'stub', modelId: 'stub-echo' });

    await client.conversation.remove.mutate({ id: older.id });
    expect((await client.conversation.list.query()).map((c) => c.id)).toEqual([id]);
  });

  it('renames a conversation and finds conversations by title or message text, in any case', async () => {
    const client = await account('ada');
    const answer = { content: 'Engines weave algebraic patterns.', route: 'LOCAL' as const };
    const { id } = await client.conversation.append.mutate({ messages: [{ role: 'user', content: 'Looms?' }], answer });
    await client.conversation.append.mutate({
      messages: [{ role: 'user', content: 'Something else' }],
      answer: { content: 'Yes.', route: 'LOCAL' },
    });
    expect(await client.conversation.rename.mutate({ id, title: '  Notes on the Analytical Engine ' })).toEqual({
      renamed: true,
    });
    expect((await client.conversation.byId.query({ id })).title).toBe('Notes on the Analytical Engine');
    const titles = async (query: string) => (await client.conversation.list.query({ query })).map((c) => c.title);
    expect(await titles('analytical')).toEqual(['Notes on the Analytical Engine']);
    // Text of the messages too, not only titles.
    expect(await titles('ALGEBRAIC')).toEqual(['Notes on the Analytical Engine']);
    expect(await titles('yes.')).toEqual(['Something else']);
    expect(await titles('no such words')).toEqual([]);
    expect(await client.conversation.list.query()).toHaveLength(2);

    // Another account cannot rename it; bad titles and searches are refused with the field named.
    const other = await account('menabrea');
    expect(codeOf(await other.conversation.rename.mutate({ id, title: 'Mine' }).catch((e: unknown) => e))).toBe(
      'NOT_FOUND',
    );
    for (const title of ['   ', 'x'.repeat(201)]) {
      expect(codeOf(await client.conversation.rename.mutate({ id, title }).catch((e: unknown) => e))).toBe(
        'BAD_REQUEST',
      );
    }
    expect(codeOf(await client.conversation.list.query({ query: 'q'.repeat(201) }).catch((e: unknown) => e))).toBe(
      'BAD_REQUEST',
    );
    expect((await client.conversation.byId.query({ id })).title).toBe('Notes on the Analytical Engine');
  });

  it('refuses guests, other accounts’ conversations, and oversized turns', async () => {
    const guest = chatClient(fixture.base, await guestCookie(fixture.base));
    expect(codeOf(await guest.conversation.list.query().catch((e: unknown) => e))).toBe('FORBIDDEN');
    const owner = await account('hopper');
    const { id } = await owner.conversation.append.mutate({
      messages: [{ role: 'user', content: 'mine' }],
      answer: { content: 'ok', route: 'LOCAL' },
    });
    const other = await account('lovelace');
    expect(codeOf(await other.conversation.byId.query({ id }).catch((e: unknown) => e))).toBe('NOT_FOUND');
    expect(codeOf(await other.conversation.remove.mutate({ id }).catch((e: unknown) => e))).toBe('NOT_FOUND');
    const appended = await other.conversation.append
      .mutate({
        conversationId: id,
        messages: [{ role: 'user', content: 'intrude' }],
        answer: { content: 'x', route: 'LOCAL' },
      })
      .catch((e: unknown) => e);
    expect(codeOf(appended)).toBe('NOT_FOUND');
    const tooLong = await owner.conversation.append
      .mutate({ messages: [{ role: 'user', content: 'y'.repeat(40_000) }], answer: { content: '', route: 'LOCAL' } })
      .catch((e: unknown) => e);
    expect(codeOf(tooLong)).toBe('BAD_REQUEST');
    expect(await fixture.db.database.prisma.message.count({ where: { conversationId: id } })).toBe(2);
  });

  it('refuses a turn that would take an account past CONVERSATION_MAX_BYTES_PER_USER, writing nothing', async () => {
    const capped = await buildApp({
      env: testEnv({ CONVERSATION_MAX_BYTES_PER_USER: '1000' }),
      database: fixture.db.database,
    });
    try {
      const owner = await account('babbage', await capped.listen({ host: '127.0.0.1', port: 0 }));
      // 'é' is two bytes in UTF-8: the cap counts bytes, not characters.
      const { id } = await owner.conversation.append.mutate({
        messages: [{ role: 'user', content: 'é'.repeat(200) }],
        answer: { content: 'x'.repeat(500), route: 'LOCAL' },
      });
      const userId = (
        await fixture.db.database.prisma.conversation.findUniqueOrThrow({ where: { id }, select: { userId: true } })
      ).userId;
      const before = await fixture.db.database.prisma.message.count({ where: { conversation: { userId } } });

      const over = [
        owner.conversation.append.mutate({
          conversationId: id,
          messages: [
            { role: 'user', content: 'é'.repeat(200) },
            { role: 'assistant', content: 'x'.repeat(500) },
            { role: 'user', content: 'more' },
          ],
          answer: { content: 'y'.repeat(100), route: 'CLOUD', provider: 'stub' },
        }),
        owner.conversation.append.mutate({
          messages: [{ role: 'user', content: 'a new chat' }],
          answer: { content: 'z'.repeat(200), route: 'MESH' },
        }),
      ];
      for (const refused of await Promise.all(over.map((attempt) => attempt.catch((e: unknown) => e)))) {
        expect(codeOf(refused)).toBe('PAYLOAD_TOO_LARGE');
        expect((refused as Error).message).toMatch(
          /^Saved conversations are limited to 1000 bytes per account; you keep 900 bytes and this turn adds \d+ bytes\. Delete some conversations to save more\.$/,
        );
      }
      expect(await fixture.db.database.prisma.conversation.count({ where: { userId } })).toBe(1);
      expect(await fixture.db.database.prisma.message.count({ where: { conversation: { userId } } })).toBe(before);

      // Exactly up to the cap is fine; deleting makes room again.
      await owner.conversation.append.mutate({
        conversationId: id,
        messages: [
          { role: 'user', content: 'é'.repeat(200) },
          { role: 'assistant', content: 'x'.repeat(500) },
          { role: 'user', content: 'ok' },
        ],
        answer: { content: 'y'.repeat(98), route: 'LOCAL' },
      });
      await owner.conversation.remove.mutate({ id });
      await owner.conversation.append.mutate({
        messages: [{ role: 'user', content: 'fresh' }],
        answer: { content: 'z'.repeat(900), route: 'LOCAL' },
      });
    } finally {
      await capped.close();
    }
  });
});
