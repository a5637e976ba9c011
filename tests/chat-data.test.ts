// The chat's data kept with an account: presets (preset.list/save/remove), each conversation's settings
// (conversation.settings, and with append and import), edits and deletes (conversation.truncate, removeMessage,
// remove) and conversations moved in from a device (conversation.import). Only the owner reaches any of it;
// guests keep theirs on the device and are refused.
import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.ts';
import type { ChatSettings } from '../src/shared/schemas/chat-settings.ts';
import { type ChatClient, chatClient } from './support/chat-client.ts';
import { databaseKinds } from './support/database.ts';
import { testEnv } from './support/env.ts';
import { useListeningApp } from './support/listening-app.ts';
import { guestCookie } from './support/server-process.ts';

const codeOf = (error: unknown) =>
  error instanceof TRPCClientError ? (error.data as { code?: string } | undefined)?.code : String(error);
const refusal = (attempt: Promise<unknown>) => attempt.then(() => 'accepted', codeOf);

const settings = (patch: Partial<ChatSettings> = {}): ChatSettings => ({
  systemPrompt: 'Answer in verse.',
  temperature: 0.4,
  topP: 0.8,
  maxNewTokens: 64,
  seed: 7,
  model: 'nano-shakespeare',
  ...patch,
});

describe.each(databaseKinds())('chat data on %s', (kind) => {
  const fixture = useListeningApp({ kind });
  const account = async (username: string, url?: string) => (await fixture.account(username, url)).client;

  describe('presets', () => {
    it('saves, replaces by name, lists in saving order and deletes an account’s presets', async () => {
      const client = await account('presets-owner');
      expect(await client.preset.list.query()).toEqual([]);
      await client.preset.save.mutate({ name: ' Verse ', settings: settings() });
      await client.preset.save.mutate({ name: 'Prose', settings: settings({ systemPrompt: '', seed: '' }) });
      await client.preset.save.mutate({ name: 'Verse', settings: settings({ temperature: 1.2 }) });
      expect(await client.preset.list.query()).toEqual([
        { name: 'Verse', settings: settings({ temperature: 1.2 }) },
        { name: 'Prose', settings: settings({ systemPrompt: '', seed: '' }) },
      ]);
      expect(await client.preset.remove.mutate({ name: 'Verse' })).toEqual({ removed: true });
      expect((await client.preset.list.query()).map((p) => p.name)).toEqual(['Prose']);
      expect(await refusal(client.preset.remove.mutate({ name: 'Verse' }))).toBe('NOT_FOUND');
    });

    it('refuses guests, keeps each account’s presets its own, and refuses bad settings and names', async () => {
      const guest = chatClient(fixture.base, await guestCookie(fixture.base));
      expect(await refusal(guest.preset.list.query())).toBe('FORBIDDEN');
      expect(await refusal(guest.preset.save.mutate({ name: 'x', settings: settings() }))).toBe('FORBIDDEN');

      const owner = await account('presets-a');
      const other = await account('presets-b');
      await owner.preset.save.mutate({ name: 'Mine', settings: settings() });
      expect(await other.preset.list.query()).toEqual([]);
      expect(await refusal(other.preset.remove.mutate({ name: 'Mine' }))).toBe('NOT_FOUND');
      expect(await owner.preset.list.query()).toHaveLength(1);

      for (const bad of [
        { name: 'hot', settings: settings({ temperature: 3 }) },
        { name: 'long', settings: settings({ maxNewTokens: 100_000 }) },
        { name: 'seed', settings: settings({ seed: -1 }) },
        { name: 'x'.repeat(61), settings: settings() },
        { name: '   ', settings: settings() },
        { name: 'extra', settings: { ...settings(), stop: ['\n'] } },
      ]) {
        expect(await refusal(owner.preset.save.mutate(bad as never))).toBe('BAD_REQUEST');
      }
      expect((await owner.preset.list.query()).map((p) => p.name)).toEqual(['Mine']);
    });

    it('caps an account at 50 presets: a new name past it is refused, replacing one still works', async () => {
      const client = await account('presets-cap');
      for (let i = 0; i < 50; i++) await client.preset.save.mutate({ name: `p${i}`, settings: settings() });
      const refused = await client.preset.save.mutate({ name: 'one more', settings: settings() }).catch((e) => e);
      expect(codeOf(refused)).toBe('TOO_MANY_REQUESTS');
      expect((refused as Error).message).toBe('At most 50 presets: delete one first');
      await client.preset.save.mutate({ name: 'p0', settings: settings({ seed: 1 }) });
      expect(await client.preset.list.query()).toHaveLength(50);
    });
  });

  describe('conversation settings', () => {
    it('stores settings with a turn and on their own, reads them back, and refuses others and bad values', async () => {
      const client = await account('settings-owner');
      const { id } = await client.conversation.append.mutate({
        messages: [{ role: 'user', content: 'Hello' }],
        answer: { content: 'Hi.', route: 'LOCAL' },
        settings: settings(),
      });
      expect((await client.conversation.byId.query({ id })).settings).toEqual(settings());
      await client.conversation.settings.mutate({ id, settings: settings({ seed: '', maxNewTokens: 300 }) });
      expect((await client.conversation.byId.query({ id })).settings).toEqual(
        settings({ seed: '', maxNewTokens: 300 }),
      );
      // A turn without settings leaves them as they are.
      await client.conversation.append.mutate({
        conversationId: id,
        messages: [{ role: 'user', content: 'Again' }],
        answer: { content: 'Yes.', route: 'LOCAL' },
      });
      expect((await client.conversation.byId.query({ id })).settings).toEqual(
        settings({ seed: '', maxNewTokens: 300 }),
      );

      const other = await account('settings-other');
      expect(await refusal(other.conversation.settings.mutate({ id, settings: settings() }))).toBe('NOT_FOUND');
      expect(await refusal(client.conversation.settings.mutate({ id, settings: settings({ topP: 0 }) }))).toBe(
        'BAD_REQUEST',
      );
      expect(
        await refusal(
          client.conversation.settings.mutate({ id, settings: settings({ systemPrompt: 'x'.repeat(32_001) }) }),
        ),
      ).toBe('BAD_REQUEST');
      expect((await client.conversation.byId.query({ id })).settings).toEqual(
        settings({ seed: '', maxNewTokens: 300 }),
      );
    });
  });

  describe('edits and deletes', () => {
    async function twoTurns(client: ChatClient) {
      const first = await client.conversation.append.mutate({
        messages: [{ role: 'user', content: 'One?' }],
        answer: { content: 'One.', route: 'LOCAL' },
      });
      const second = await client.conversation.append.mutate({
        conversationId: first.id,
        messages: [{ role: 'user', content: 'Two?' }],
        answer: { content: 'Two.', route: 'CLOUD', provider: 'stub' },
      });
      return { id: first.id, ids: [...first.messageIds, ...second.messageIds] };
    }
    const contents = async (client: ChatClient, id: string) =>
      (await client.conversation.byId.query({ id })).messages.map((m) => m.content);

    it('replaces the messages from an edited question on, and keeps a regenerated question once', async () => {
      const client = await account('edits-owner');
      const { id, ids } = await twoTurns(client);
      expect(ids).toHaveLength(4);
      expect((await client.conversation.byId.query({ id })).messages.map((m) => m.id)).toEqual(ids);

      // Edit "Two?" and resend: it and everything after it go, the edited turn is appended.
      expect(await client.conversation.truncate.mutate({ id, messageId: ids[2]! })).toEqual({ removed: 2 });
      const edited = await client.conversation.append.mutate({
        conversationId: id,
        messages: [{ role: 'user', content: 'Two, edited?' }],
        answer: { content: 'Two, edited.', route: 'LOCAL' },
      });
      expect(await contents(client, id)).toEqual(['One?', 'One.', 'Two, edited?', 'Two, edited.']);

      // Regenerate: the answer goes, a new one follows the question the server holds (no messages sent).
      await client.conversation.truncate.mutate({ id, messageId: edited.messageIds[1]! });
      await client.conversation.append.mutate({
        conversationId: id,
        messages: [],
        answer: { content: 'Two, again.', route: 'LOCAL' },
      });
      expect(await contents(client, id)).toEqual(['One?', 'One.', 'Two, edited?', 'Two, again.']);

      // Delete one message, then the conversation.
      const now = (await client.conversation.byId.query({ id })).messages;
      expect(await client.conversation.removeMessage.mutate({ id, messageId: now[1]!.id })).toEqual({ removed: true });
      expect(await contents(client, id)).toEqual(['One?', 'Two, edited?', 'Two, again.']);
      await client.conversation.remove.mutate({ id });
      expect(await refusal(client.conversation.byId.query({ id }))).toBe('NOT_FOUND');
    });

    it('lets only the owner edit or delete, and only messages of the conversation named', async () => {
      const owner = await account('edits-a');
      const other = await account('edits-b');
      const mine = await twoTurns(owner);
      const theirs = await twoTurns(other);
      expect(await refusal(other.conversation.truncate.mutate({ id: mine.id, messageId: mine.ids[0]! }))).toBe(
        'NOT_FOUND',
      );
      expect(await refusal(other.conversation.removeMessage.mutate({ id: mine.id, messageId: mine.ids[0]! }))).toBe(
        'NOT_FOUND',
      );
      // Their own conversation named with a message of mine: still refused.
      expect(await refusal(other.conversation.truncate.mutate({ id: theirs.id, messageId: mine.ids[0]! }))).toBe(
        'NOT_FOUND',
      );
      expect(await refusal(other.conversation.removeMessage.mutate({ id: theirs.id, messageId: mine.ids[1]! }))).toBe(
        'NOT_FOUND',
      );
      expect(await refusal(other.conversation.remove.mutate({ id: mine.id }))).toBe('NOT_FOUND');
      expect(await refusal(owner.conversation.truncate.mutate({ id: mine.id, messageId: 'not-a-uuid' }))).toBe(
        'BAD_REQUEST',
      );
      expect(
        await refusal(owner.conversation.append.mutate({ messages: [], answer: { content: 'x', route: 'LOCAL' } })),
      ).toBe('BAD_REQUEST');
      expect(await contents(owner, mine.id)).toEqual(['One?', 'One.', 'Two?', 'Two.']);
      expect(await contents(other, theirs.id)).toEqual(['One?', 'One.', 'Two?', 'Two.']);

      const guest = chatClient(fixture.base, await guestCookie(fixture.base));
      expect(await refusal(guest.conversation.truncate.mutate({ id: mine.id, messageId: mine.ids[0]! }))).toBe(
        'FORBIDDEN',
      );
    });
  });

  describe('conversations moved from a device', () => {
    it('stores a whole conversation in order, with its title, settings and answer records, in parts', async () => {
      const client = await account('import-owner');
      const first = await client.conversation.import.mutate({
        title: 'From my phone',
        settings: settings(),
        messages: [
          { role: 'user', content: 'Q1' },
          { role: 'assistant', content: 'A1', record: { route: 'MESH', modelId: 'nano-shakespeare', ttftMs: 40 } },
          ...Array.from({ length: 198 }, (_, i) => ({ role: 'user' as const, content: `filler ${i}` })),
        ],
      });
      // The next part right away: its messages still come after the first part's, which were stamped ahead.
      const second = await client.conversation.import.mutate({
        conversationId: first.id,
        messages: [{ role: 'user', content: 'A question left unanswered' }],
      });
      expect(second.id).toBe(first.id);
      const read = await client.conversation.byId.query({ id: first.id });
      expect(read.title).toBe('From my phone');
      expect(read.settings).toEqual(settings());
      expect(read.messages).toHaveLength(201);
      expect(read.messages.map((m) => m.id)).toEqual([...first.messageIds, ...second.messageIds]);
      expect(read.messages[1]).toMatchObject({
        role: 'ASSISTANT',
        route: 'MESH',
        modelId: 'nano-shakespeare',
        ttftMs: 40,
      });
      expect(read.messages.at(-1)).toMatchObject({ role: 'USER', content: 'A question left unanswered' });
      // And it continues like any account conversation.
      await client.conversation.append.mutate({
        conversationId: first.id,
        messages: [],
        answer: { content: 'At last.', route: 'LOCAL' },
      });
      expect((await client.conversation.byId.query({ id: first.id })).messages.at(-1)?.content).toBe('At last.');
    });

    it('refuses guests, others’ conversations, oversized parts and a move past the account’s cap', async () => {
      const guest = chatClient(fixture.base, await guestCookie(fixture.base));
      const one = [{ role: 'user' as const, content: 'hi' }];
      expect(await refusal(guest.conversation.import.mutate({ messages: one }))).toBe('FORBIDDEN');
      const owner = await account('import-a');
      const other = await account('import-b');
      const { id } = await owner.conversation.import.mutate({ messages: one });
      expect(await refusal(other.conversation.import.mutate({ conversationId: id, messages: one }))).toBe('NOT_FOUND');
      const tooMany = Array.from({ length: 201 }, () => ({ role: 'user' as const, content: 'x' }));
      expect(await refusal(owner.conversation.import.mutate({ messages: tooMany }))).toBe('BAD_REQUEST');
      expect(await refusal(owner.conversation.import.mutate({ messages: [] }))).toBe('BAD_REQUEST');
      const big = Array.from({ length: 10 }, () => ({ role: 'user' as const, content: 'x'.repeat(31_000) }));
      expect(await refusal(owner.conversation.import.mutate({ messages: big }))).toBe('BAD_REQUEST');

      const capped = await buildApp({
        env: testEnv({ CONVERSATION_MAX_BYTES_PER_USER: '1000' }),
        database: fixture.db.database,
      });
      try {
        const small = await account('import-capped', await capped.listen({ host: '127.0.0.1', port: 0 }));
        await small.conversation.import.mutate({ messages: [{ role: 'user', content: 'x'.repeat(600) }] });
        const refused = await small.conversation.import
          .mutate({ messages: [{ role: 'user', content: 'y'.repeat(500) }] })
          .catch((e: unknown) => e);
        expect(codeOf(refused)).toBe('PAYLOAD_TOO_LARGE');
        expect((refused as Error).message).toMatch(/this conversation adds 500 bytes/);
        expect(await small.conversation.list.query()).toHaveLength(1);
      } finally {
        await capped.close();
      }
    });
  });
});
