// The chat's data with an account (issue 13), in headless Chromium against the real server process and the fake
// OpenAI-compatible API: at sign-up a guest's conversations on this device are offered to move into the account (moved,
// the account holds them and the device no longer does); presets and a conversation's settings are kept with the
// account and follow it to another device; editing, regenerating and deleting change the account's copy too, and edits
// made offline reach it when the network returns. On the second device, logging in offers that device's conversations,
// and "Keep on this device" keeps them there and out of the account. On the device route, the settings change what this
// browser's engine produces: max new tokens caps the answer, a seed repeats it and another seed changes it, the system
// prompt goes into the prompt.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { FakeOpenAI } from '../../scripts/fake-openai.ts';
import { cloudProviderEnv, useAppServer } from '../support/app-server.ts';

const openai = new FakeOpenAI();
const app = useAppServer({ name: 'chat-data', services: [openai], env: () => cloudProviderEnv(openai, 'gpt-test') });
const viewport = { width: 1280, height: 900 };
const USERNAME = 'grace-data';
const PASSWORD = 'correct horse battery';

/** A tRPC query as the signed-in person in `page`, answered by the server. */
async function query<T>(page: Page, procedure: string, input?: unknown): Promise<T> {
  return page.evaluate(
    async ({ procedure, input }) => {
      const search = input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`;
      const body = (await (await fetch(`/api/trpc/${procedure}${search}`)).json()) as { result?: { data: unknown } };
      return body.result?.data;
    },
    { procedure, input },
  ) as Promise<T>;
}

interface Stored {
  id: string;
  title: string;
  settings: { systemPrompt: string; maxNewTokens: number } | null;
  messages: { content: string }[];
}
const listed = (page: Page) => query<{ id: string; title: string }[]>(page, 'conversation.list');
async function stored(page: Page, title: string): Promise<Stored | undefined> {
  const found = (await listed(page)).find((c) => c.title === title);
  return found && query<Stored>(page, 'conversation.byId', { id: found.id });
}
const storedContents = async (page: Page, title: string) => (await stored(page, title))?.messages.map((m) => m.content);

/** Conversations this device keeps in IndexedDB, by title. */
const onDevice = (page: Page) =>
  page.evaluate(
    () =>
      new Promise<string[]>((resolve, reject) => {
        const opening = indexedDB.open('mesh-nanollm');
        opening.onerror = () => reject(opening.error);
        opening.onsuccess = () => {
          const all = opening.result.transaction('conversations').objectStore('conversations').getAll();
          all.onsuccess = () => {
            resolve((all.result as { title: string }[]).map((c) => c.title));
            opening.result.close();
          };
        };
      }),
  );

const nav = (page: Page, screen: 'Chat' | 'Account') =>
  page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: screen }).click();

async function cloudRoute(page: Page) {
  await expect
    .poll(() => page.getByTestId('chat-route').locator('option[value="openai"]').count(), { timeout: 30_000 })
    .toBe(1);
  await page.getByTestId('chat-route').selectOption('openai');
}

async function send(page: Page, text: string): Promise<void> {
  const before = await page.getByTestId('answer-readout').count();
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-input').press('Enter');
  await expect.poll(() => page.getByTestId('answer-readout').count(), { timeout: 30_000 }).toBe(before + 1);
}

async function guestWithChat(name: string, question: string): Promise<Page> {
  const page = await app.guest(name, { viewport });
  await page.goto(app.url);
  await cloudRoute(page);
  await send(page, question);
  await expect.poll(() => onDevice(page)).toEqual([question]);
  return page;
}

async function openConversation(page: Page, title: string) {
  await nav(page, 'Chat');
  await page
    .getByRole('complementary', { name: 'Conversations' })
    .getByTestId('conversation-item')
    .getByRole('button', { name: title, exact: true })
    .click();
  await page.locator('[data-testid="conversation-item"][data-current="true"]').filter({ hasText: title }).waitFor();
  await page.getByTestId('chat-message-user').first().waitFor();
}

const texts = (page: Page, role: 'user' | 'assistant') =>
  page.getByTestId(`chat-message-${role}`).locator('p').allTextContents();

describe('chat data with an account', () => {
  let first: Page;

  it('moves a guest’s conversation into the account at sign-up, then keeps settings, presets, edits and deletes there', async () => {
    first = await guestWithChat('Grace', 'A guest question');

    await nav(first, 'Account');
    await first.getByTestId('account-username').fill(USERNAME);
    await first.getByTestId('account-password').fill(PASSWORD);
    await first.getByTestId('account-submit').click();
    const offer = first.getByTestId('move-offer');
    await offer.waitFor({ timeout: 15_000 });
    expect(await offer.getByTestId('move-offer-item').allTextContents()).toEqual(['A guest question']);
    await offer.getByTestId('move-offer-accept').click();
    await offer.waitFor({ state: 'detached', timeout: 15_000 });
    expect((await listed(first)).map((c) => c.title)).toEqual(['A guest question']);
    expect(await storedContents(first, 'A guest question')).toEqual(['A guest question', 'Echo: A guest question']);
    expect(await onDevice(first)).toEqual([]);

    // Opened as the account's, its settings and a preset are kept with the account.
    await openConversation(first, 'A guest question');
    await first.getByTestId('conversations-kept').filter({ hasText: 'Kept with your account.' }).waitFor();
    await cloudRoute(first);
    await first.getByTestId('chat-settings').click();
    await first.getByTestId('chat-presets-where').filter({ hasText: 'with your account' }).waitFor();
    await first.getByTestId('chat-system-prompt').fill('Answer briefly.');
    await first.getByTestId('chat-max-tokens').fill('33');
    await first.getByTestId('chat-preset-name').fill('Brief');
    await first.getByTestId('chat-preset-save').click();
    await expect.poll(() => first.getByTestId('chat-preset').count()).toBe(1);
    await first.keyboard.press('Escape');
    await expect
      .poll(async () => (await stored(first, 'A guest question'))?.settings)
      .toMatchObject({ systemPrompt: 'Answer briefly.', maxNewTokens: 33 });
    expect(await query<{ name: string }[]>(first, 'preset.list')).toMatchObject([
      { name: 'Brief', settings: { systemPrompt: 'Answer briefly.', maxNewTokens: 33 } },
    ]);

    await send(first, 'A second question');
    expect(openai.requests.at(-1)?.body).toMatchObject({
      max_tokens: 33,
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'A guest question' },
        { role: 'assistant', content: 'Echo: A guest question' },
        { role: 'user', content: 'A second question' },
      ],
    });

    // Editing the second question replaces it and its answer on the server too.
    await first.getByTestId('chat-message-user').nth(1).getByTestId('message-edit').click();
    await first.getByTestId('message-edit-text').fill('The second, edited');
    await first.getByTestId('message-edit-save').click();
    await expect.poll(() => texts(first, 'assistant')).toEqual(['Echo: A guest question', 'Echo: The second, edited']);
    await expect
      .poll(() => storedContents(first, 'A guest question'))
      .toEqual(['A guest question', 'Echo: A guest question', 'The second, edited', 'Echo: The second, edited']);

    // Regenerating replaces the last answer there (no second copy of the question); deleting removes a message.
    const asked = openai.requests.length;
    await first.getByTestId('chat-regenerate').click();
    await expect.poll(() => openai.requests.length).toBe(asked + 1);
    await expect.poll(() => first.getByTestId('chat-regenerate').isEnabled()).toBe(true);
    await expect.poll(async () => (await storedContents(first, 'A guest question'))?.length).toBe(4);
    await first.getByTestId('chat-message-assistant').first().getByTestId('message-delete').click();
    await expect
      .poll(() => storedContents(first, 'A guest question'))
      .toEqual(['A guest question', 'The second, edited', 'Echo: The second, edited']);
  }, 120_000);

  it('applies a message deleted, a rename and a conversation deleted offline to the account when the network returns', async () => {
    await first.context().setOffline(true);
    await first.getByTestId('offline-indicator').filter({ hasText: 'Offline' }).waitFor();
    await first.getByTestId('chat-message-user').first().getByTestId('message-delete').click();
    await expect.poll(() => texts(first, 'user')).toEqual(['The second, edited']);
    // Kept on this device for the account meanwhile, where it can be renamed too.
    await first.getByTestId('conversations-kept').filter({ hasText: 'Kept on this device while offline' }).waitFor();
    const item = first.getByRole('complementary', { name: 'Conversations' }).getByTestId('conversation-item');
    await item.getByRole('button', { name: 'Rename A guest question' }).click();
    await first.getByTestId('conversation-title').fill('Renamed offline');
    await first.getByTestId('conversation-title').press('Enter');
    await item.getByRole('button', { name: 'Renamed offline', exact: true }).waitFor();

    await first.context().setOffline(false);
    await expect
      .poll(() => storedContents(first, 'Renamed offline'), { timeout: 30_000 })
      .toEqual(['The second, edited', 'Echo: The second, edited']);
    expect((await listed(first)).map((c) => c.title)).toEqual(['Renamed offline']);
    await expect.poll(() => onDevice(first)).toEqual([]);

    // A conversation of the account deleted while offline is deleted from the account when the network returns.
    await first.getByTestId('chat-input').press('Control+k');
    await send(first, 'To delete offline');
    await expect.poll(async () => (await listed(first)).map((c) => c.title)).toContain('To delete offline');
    await first.context().setOffline(true);
    await first.getByTestId('offline-indicator').filter({ hasText: 'Offline' }).waitFor();
    await first.getByTestId('chat-message-assistant').first().getByTestId('message-delete').click();
    await item.getByRole('button', { name: 'Delete To delete offline' }).click();
    await expect.poll(() => onDevice(first)).toEqual([]);
    await first.context().setOffline(false);
    await expect
      .poll(async () => (await listed(first)).map((c) => c.title), { timeout: 30_000 })
      .toEqual(['Renamed offline']);
  }, 90_000);

  it('on another device, logging in offers its own conversations, keeps them there when asked, and brings the account’s settings and presets', async () => {
    const second = await guestWithChat('Linus', 'Kept here');
    const title = 'Renamed offline';
    await nav(second, 'Account');
    await second.getByRole('button', { name: 'I have an account: log in' }).click();
    await second.getByTestId('account-username').fill(USERNAME);
    await second.getByTestId('account-password').fill(PASSWORD);
    await second.getByTestId('account-submit').click();
    const offer = second.getByTestId('move-offer');
    await offer.waitFor({ timeout: 15_000 });
    expect(await offer.getByTestId('move-offer-item').allTextContents()).toEqual(['Kept here']);
    await offer.getByTestId('move-offer-keep').click();
    await offer.waitFor({ state: 'detached' });
    expect((await listed(second)).map((c) => c.title)).toEqual([title]);
    expect(await onDevice(second)).toEqual(['Kept here']);

    await openConversation(second, title);
    expect(await texts(second, 'user')).toEqual(['The second, edited']);
    await second.getByTestId('chat-settings').click();
    expect(await second.getByTestId('chat-system-prompt').inputValue()).toBe('Answer briefly.');
    expect(await second.getByTestId('chat-max-tokens').inputValue()).toBe('33');
    await expect.poll(() => second.getByTestId('chat-preset').allTextContents()).toEqual(['Brief']);
    await second.keyboard.press('Escape');

    // Deleted here, it is gone from the account, so from the first device's list too.
    await second.getByRole('button', { name: `Delete ${title}` }).click();
    await expect.poll(() => listed(second)).toEqual([]);
    await nav(first, 'Account');
    await nav(first, 'Chat');
    await expect.poll(() => first.getByTestId('conversation-item').count()).toBe(0);
    await second.context().close();
    await first.context().close();
  }, 120_000);
});

interface EngineRecord {
  requests: { messages: { role: string; content: string }[]; sampling: Record<string, number> }[];
  completes: { text: string; tokenIds: number[]; completionTokens: number; promptTokens: number; reason: string }[];
}

describe('chat settings on the device route', () => {
  it('caps the answer at max new tokens, repeats it with the same seed, changes it with another, and sends the system prompt', async () => {
    const page = await app.guest('Portia', { viewport });
    // What the page asks of its engine worker and what the engine answers, as they cross the worker boundary.
    await page.addInitScript(() => {
      const record = { requests: [] as unknown[], completes: [] as unknown[] };
      (globalThis as unknown as { __engine: typeof record }).__engine = record;
      const post = Worker.prototype.postMessage as (this: Worker, message: unknown) => void;
      const heard = new WeakSet<Worker>();
      Worker.prototype.postMessage = function (this: Worker, message: unknown) {
        if (!heard.has(this)) {
          heard.add(this);
          this.addEventListener('message', (event: MessageEvent<{ type?: string }>) => {
            if (event.data?.type === 'complete') record.completes.push(event.data);
          });
        }
        if ((message as { type?: string } | null)?.type === 'generate') record.requests.push(message);
        post.call(this, message);
      };
    });
    const engine = () => page.evaluate(() => (globalThis as unknown as { __engine: EngineRecord }).__engine);
    await page.goto(`${app.url}/models`);
    const card = page.locator('[data-testid="model-card"][data-model-id="nano-shakespeare"]');
    await card.getByTestId('model-load').click();
    await expect.poll(() => card.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');
    await nav(page, 'Chat');
    await page.getByTestId('backend-badge').waitFor();

    async function ask(settings: { maxTokens: string; seed: string; systemPrompt?: string; topP?: string }) {
      await page.getByTestId('chat-input').press('Control+k');
      await expect.poll(() => page.getByTestId('chat-message-user').count()).toBe(0);
      await page.getByTestId('chat-temperature').fill('0.9');
      await page.getByTestId('chat-seed').fill(settings.seed);
      await page.getByTestId('chat-settings').click();
      await page.getByTestId('chat-max-tokens').fill(settings.maxTokens);
      await page.getByTestId('chat-system-prompt').fill(settings.systemPrompt ?? '');
      await page.getByTestId('chat-top-p').fill(settings.topP ?? '0.95');
      await page.keyboard.press('Escape');
      const before = (await engine()).completes.length;
      await send(page, 'What say you, my lord?');
      await expect.poll(async () => (await engine()).completes.length, { timeout: 60_000 }).toBe(before + 1);
      const { requests, completes } = await engine();
      const complete = completes.at(-1)!;
      // The answer shown is the one the engine made.
      expect((await texts(page, 'assistant')).join('')).toBe(complete.text.trim());
      return { request: requests.at(-1)!, complete };
    }

    const short = await ask({ maxTokens: '4', seed: '11' });
    expect(short.request.sampling).toEqual({ temperature: 0.9, topP: 0.95, maxNewTokens: 4, seed: 11 });
    expect(short.complete).toMatchObject({ completionTokens: 4, reason: 'length' });

    const long = await ask({ maxTokens: '24', seed: '11' });
    expect(long.complete.completionTokens).toBeGreaterThan(4);
    // The same seed draws the same tokens: the capped answer is where the longer one begins.
    expect(long.complete.tokenIds.slice(0, 4)).toEqual(short.complete.tokenIds);
    const again = await ask({ maxTokens: '24', seed: '11' });
    expect(again.complete.tokenIds).toEqual(long.complete.tokenIds);
    const other = await ask({ maxTokens: '24', seed: '12' });
    expect(other.complete.tokenIds).not.toEqual(long.complete.tokenIds);

    const prompted = await ask({ maxTokens: '24', seed: '11', systemPrompt: 'Thou art a sonneteer.', topP: '0.5' });
    expect(prompted.request.messages).toEqual([
      { role: 'system', content: 'Thou art a sonneteer.' },
      { role: 'user', content: 'What say you, my lord?' },
    ]);
    expect(prompted.request.sampling).toMatchObject({ topP: 0.5, maxNewTokens: 24, seed: 11 });
    // The engine read it: the prompt it ran is longer by the system prompt's tokens.
    expect(prompted.complete.promptTokens).toBeGreaterThan(long.complete.promptTokens);
    await page.context().close();
  }, 180_000);
});
