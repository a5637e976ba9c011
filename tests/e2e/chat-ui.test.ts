// The chat people expect (issue 13), in headless Chromium at desktop and phone size, against the real server process
// with the fake OpenAI-compatible API as the cloud provider: the UI kit's themes, chat settings applied on the cloud
// route (asserted on what the provider received), and the chat's controls where a thumb reaches them; each item at both
// sizes, and no page scrolls sideways at any step.
import { readFile } from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { FakeOpenAI } from '../../scripts/fake-openai.ts';
import { cloudProviderEnv, useAppServer } from '../support/app-server.ts';
import { scrollsSideways } from '../support/browser.ts';

const SIZES = [
  { name: 'desktop', viewport: { width: 1280, height: 900 } },
  { name: 'phone', viewport: { width: 390, height: 844 } },
] as const;

const openai = new FakeOpenAI();
const app = useAppServer({
  name: 'chat-ui',
  services: [openai],
  env: () => cloudProviderEnv(openai, 'gpt-test,openai/gpt-test'),
});

/** The body of the fake provider's last chat request. */
const lastBody = () =>
  openai.requests.at(-1)?.body as Record<string, unknown> & { messages: { role: string; content: string }[] };

/** Sends a message and waits for its answer's readout. */
async function send(page: Page, text: string): Promise<void> {
  const before = await page.getByTestId('answer-readout').count();
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-input').press('Enter');
  await expect.poll(() => page.getByTestId('answer-readout').count(), { timeout: 30_000 }).toBe(before + 1);
}

async function cloudPage(name: string, viewport: { width: number; height: number }): Promise<Page> {
  const page = await app.guest(name, { viewport });
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url });
  await page.goto(app.url);
  await expect.poll(() => page.getByTestId('chat-route').locator('option[value="openai"]').count()).toBe(1);
  await page.getByTestId('chat-route').selectOption('openai');
  return page;
}

const texts = (page: Page, role: 'user' | 'assistant') =>
  page.getByTestId(`chat-message-${role}`).locator('p, pre').allTextContents();

const theme = (page: Page) => page.evaluate(() => document.documentElement.dataset.theme);

describe.each(SIZES)('at $name size', ({ name, viewport }) => {
  it('switches between dark, light and the system theme, and keeps the choice', async () => {
    const page = await app.guest(`Theme ${name}`, { viewport, colorScheme: 'light' });
    await page.goto(app.url);
    await expect.poll(() => theme(page)).toBe('dark');
    await page.getByTestId('theme-switch').click();
    await page.getByTestId('theme-system').click();
    // The system (emulated) prefers light.
    await expect.poll(() => theme(page)).toBe('light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await expect.poll(() => theme(page)).toBe('dark');
    await page.getByTestId('theme-switch').click();
    await page.getByTestId('theme-light').click();
    await expect.poll(() => theme(page)).toBe('light');
    await page.reload();
    await expect.poll(() => theme(page)).toBe('light');
    expect(await page.getByTestId('theme-switch').getAttribute('aria-label')).toBe('Theme: Light');
    await page.context().close();
  }, 60_000);

  it('passes the conversation settings and the chosen model to the cloud provider', async () => {
    const page = await cloudPage(`Settings ${name}`, viewport);
    await page.getByTestId('chat-temperature').fill('0.3');
    await page.getByTestId('chat-seed').fill('4242');
    await page.getByTestId('chat-settings').click();
    await page.getByTestId('chat-system-prompt').fill('You answer in rhyme.');
    await page.getByTestId('chat-top-p').fill('0.5');
    await page.getByTestId('chat-max-tokens').fill('77');
    await page.getByTestId('chat-model').selectOption('openai/gpt-test');
    // A preset keeps them for another conversation.
    await page.getByTestId('chat-preset-name').fill('Rhymes');
    await page.getByTestId('chat-preset-save').click();
    await expect.poll(() => page.getByTestId('chat-preset').count()).toBe(1);
    await page.keyboard.press('Escape');
    await send(page, 'Hello there');
    const body = lastBody();
    expect(body.model).toBe('openai/gpt-test');
    expect(body.messages).toEqual([
      { role: 'system', content: 'You answer in rhyme.' },
      { role: 'user', content: 'Hello there' },
    ]);
    expect(body).toMatchObject({ temperature: 0.3, top_p: 0.5, max_tokens: 77, seed: 4242 });
    expect(await page.getByTestId('answer-readout').last().textContent()).toContain('openai/gpt-test');

    // A new chat (Ctrl+K) keeps the settings in use; the preset brings them back after a change.
    await page.getByTestId('chat-input').press('Control+k');
    await expect.poll(() => page.getByTestId('chat-message-user').count()).toBe(0);
    await page.getByTestId('chat-settings').click();
    await page.getByTestId('chat-system-prompt').fill('');
    await page.getByTestId('chat-preset').getByRole('button', { name: 'Rhymes', exact: true }).click();
    expect(await page.getByTestId('chat-system-prompt').inputValue()).toBe('You answer in rhyme.');
    await page.keyboard.press('Escape');
    await send(page, 'Again');
    expect(lastBody().messages[0]).toEqual({ role: 'system', content: 'You answer in rhyme.' });
    await page.context().close();
  }, 60_000);

  it('copies, edits and resends, regenerates and deletes messages, and copies a code block', async () => {
    const page = await cloudPage(`Actions ${name}`, viewport);
    await send(page, 'first question');
    await send(page, 'second question');
    expect(await texts(page, 'user')).toEqual(['first question', 'second question']);
    expect(await scrollsSideways(page)).toBe(false);

    await page.getByTestId('chat-message-user').first().getByTestId('message-copy').click();
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe('first question');

    // Editing the first question replaces everything after it.
    await page.getByTestId('chat-message-user').first().getByTestId('message-edit').click();
    await page.getByTestId('message-edit-text').fill('edited question');
    expect(await scrollsSideways(page)).toBe(false);
    await page.getByTestId('message-edit-save').click();
    await expect.poll(() => texts(page, 'user')).toEqual(['edited question']);
    await expect.poll(() => texts(page, 'assistant')).toEqual(['Echo: edited question']);
    expect(lastBody().messages).toEqual([{ role: 'user', content: 'edited question' }]);

    // Regenerate asks again with the same question.
    const asked = openai.requests.length;
    await page.getByTestId('chat-regenerate').click();
    await expect.poll(() => openai.requests.length).toBe(asked + 1);
    await expect.poll(() => page.getByTestId('chat-regenerate').isEnabled()).toBe(true);
    expect(await texts(page, 'assistant')).toEqual(['Echo: edited question']);

    // Up in the empty box edits the last question.
    await page.getByTestId('chat-input').press('ArrowUp');
    await expect.poll(() => page.getByTestId('message-edit-text').inputValue()).toBe('edited question');
    expect(await scrollsSideways(page)).toBe(false);
    await page.getByTestId('message-edit-text').press('Escape');

    await page.getByTestId('chat-message-assistant').first().getByTestId('message-delete').click();
    await expect.poll(() => page.getByTestId('chat-message-assistant').count()).toBe(0);
    expect(await texts(page, 'user')).toEqual(['edited question']);

    // A line of code wider than a phone scrolls inside its block, not the page.
    const code = `const answer = 42; // ${'forty-two '.repeat(12).trim()}`;
    openai.reply = () => `Here:\n\n\`\`\`js\n${code}\n\`\`\`\n`;
    await send(page, 'some code please');
    expect(await scrollsSideways(page)).toBe(false);
    await page.getByTestId('code-copy').click();
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(code);
    openai.reset();
    await page.context().close();
  }, 60_000);

  it('stops an answer with Esc, and makes a new line with Shift+Enter', async () => {
    const page = await cloudPage(`Keys ${name}`, viewport);
    await page.getByTestId('chat-input').fill('line one');
    await page.getByTestId('chat-input').press('Shift+Enter');
    await page.getByTestId('chat-input').pressSequentially('line two');
    expect(await page.getByTestId('chat-input').inputValue()).toBe('line one\nline two');
    expect(await scrollsSideways(page)).toBe(false);
    openai.fault = { kind: 'slow', delayMs: 300 };
    await page.getByTestId('chat-input').press('Enter');
    await expect.poll(() => page.getByTestId('chat-stop').isEnabled()).toBe(true);
    await expect
      .poll(async () => (await page.getByTestId('chat-message-assistant').textContent())?.length ?? 0)
      .toBeGreaterThan(0);
    await page.getByTestId('chat-input').press('Escape');
    await expect.poll(() => page.getByTestId('answer-readout').textContent()).toBe('OpenAI · stopped');
    // The readout and the Stop button change in separate renders: wait for the second rather than read it at once.
    await expect.poll(() => page.getByTestId('chat-stop').isEnabled()).toBe(false);
    expect(await scrollsSideways(page)).toBe(false);
    openai.reset();
    await page.context().close();
  }, 60_000);

  it('keeps the conversation, its route, the draft and a streaming answer while another screen is open', async () => {
    const page = await cloudPage(`Away ${name}`, viewport);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await send(page, 'Remember this');
    // A chunk every 2 s: the answer is still streaming when the person comes back.
    openai.fault = { kind: 'slow', delayMs: 2000 };
    await page.getByTestId('chat-input').fill('Keep streaming');
    await page.getByTestId('chat-input').press('Enter');
    await expect.poll(() => page.getByTestId('chat-stop').isEnabled()).toBe(true);
    await page.getByTestId('chat-input').fill('half a thought');
    await nav.getByRole('link', { name: 'Models' }).click();
    await expect.poll(() => page.getByTestId('model-card').count()).toBeGreaterThan(0);
    await nav.getByRole('link', { name: 'Chat' }).click();
    expect(await page.getByTestId('chat-route').inputValue()).toBe('openai');
    expect(await page.getByTestId('chat-input').inputValue()).toBe('half a thought');
    expect(await texts(page, 'user')).toEqual(['Remember this', 'Keep streaming']);
    // The answer goes on streaming into the chat shown now, and Stop still reaches it.
    expect(await page.getByTestId('chat-stop').isEnabled()).toBe(true);
    await expect.poll(async () => (await texts(page, 'assistant')).at(1)?.length ?? 0).toBeGreaterThan(0);
    await page.getByTestId('chat-stop').click();
    await expect.poll(() => page.getByTestId('answer-readout').last().textContent()).toBe('OpenAI · stopped');
    expect(await scrollsSideways(page)).toBe(false);
    openai.reset();
    await page.context().close();
  }, 60_000);
});

/** The conversation list: beside the chat on a desktop, in the drawer on a phone. */
async function conversations(page: Page, phone: boolean) {
  if (!phone) return page.getByRole('complementary', { name: 'Conversations' });
  if ((await page.getByRole('dialog').count()) === 0) await page.getByTestId('conversations-drawer').click();
  return page.getByRole('dialog');
}

describe.each(SIZES)('conversations at $name size', ({ name, viewport }) => {
  it('renames, searches titles and text, exports Markdown and JSON, imports JSON (refusing a bad file) and deletes', async () => {
    const phone = name === 'phone';
    const page = await cloudPage(`Lists ${name}`, viewport);
    await send(page, 'apples and pears');
    await page.getByTestId('chat-input').press('Control+k');
    await send(page, 'bananas');
    let list = await conversations(page, phone);
    await expect.poll(() => list.getByTestId('conversation-item').count()).toBe(2);

    await list.getByTestId('conversation-search').fill('PEARS');
    await expect.poll(() => list.getByTestId('conversation-item').allTextContents()).toEqual(['apples and pears']);
    expect(await scrollsSideways(page)).toBe(false);
    // Text of the answers too, not only titles.
    await list.getByTestId('conversation-search').fill('echo: banan');
    await expect.poll(() => list.getByTestId('conversation-item').allTextContents()).toEqual(['bananas']);
    await list.getByTestId('conversation-search').fill('');
    await expect.poll(() => list.getByTestId('conversation-item').count()).toBe(2);

    await list
      .getByTestId('conversation-item')
      .filter({ hasText: 'apples' })
      .getByTestId('conversation-rename')
      .click();
    await list.getByTestId('conversation-title').fill('Fruit talk');
    expect(await scrollsSideways(page)).toBe(false);
    await list.getByTestId('conversation-title').press('Enter');
    await expect.poll(() => list.getByTestId('conversation-item').allTextContents()).toContain('Fruit talk');

    // The open conversation ("bananas") as Markdown and JSON.
    const saved = async (testId: string) => {
      const [file] = await Promise.all([page.waitForEvent('download'), list.getByTestId(testId).click()]);
      return { name: file.suggestedFilename(), text: await readFile(await file.path(), 'utf8') };
    };
    const markdown = await saved('conversation-export-markdown');
    expect(markdown.name).toBe('bananas.md');
    expect(markdown.text).toMatch(/^# bananas\n\n## You\n\nbananas\n\n## Answer\n\nEcho: bananas\n/);
    const json = await saved('conversation-export-json');
    expect(JSON.parse(json.text)).toMatchObject({
      format: 'mesh-nanollm.conversation',
      version: 1,
      title: 'bananas',
      messages: [
        { role: 'user', content: 'bananas' },
        { role: 'assistant', content: 'Echo: bananas' },
      ],
    });

    // A bad file: a clear error, nothing added.
    await list.getByTestId('conversation-import').setInputFiles({
      name: 'bad.json',
      mimeType: 'application/json',
      buffer: Buffer.from(
        JSON.stringify({
          format: 'mesh-nanollm.conversation',
          version: 1,
          title: 'x',
          messages: [{ role: 'robot', content: 'hi' }],
        }),
      ),
    });
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toMatch(/^bad\.json was not imported: .*\(at messages\.0\.role\)/);
    expect(await scrollsSideways(page)).toBe(false);
    list = await conversations(page, phone);
    expect(await list.getByTestId('conversation-item').count()).toBe(2);
    await list.getByTestId('conversation-import').setInputFiles({
      name: 'not.json',
      mimeType: 'application/json',
      buffer: Buffer.from('{ not json'),
    });
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toBe('not.json is not JSON: export a conversation as JSON to import it');
    list = await conversations(page, phone);
    expect(await list.getByTestId('conversation-item').count()).toBe(2);

    // The exported file imports as a new conversation, opened.
    const edited = { ...JSON.parse(json.text), title: 'Imported bananas' };
    await list.getByTestId('conversation-import').setInputFiles({
      name: 'bananas.json',
      mimeType: 'application/json',
      buffer: Buffer.from(JSON.stringify(edited)),
    });
    list = await conversations(page, phone);
    await expect.poll(() => list.getByTestId('conversation-item').count()).toBe(3);
    expect(await list.getByTestId('conversation-item').allTextContents()).toContain('Imported bananas');
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(await texts(page, 'assistant')).toEqual(['Echo: bananas']);

    await list.getByRole('button', { name: 'Delete Fruit talk' }).click();
    await expect.poll(() => list.getByTestId('conversation-item').count()).toBe(2);
    expect(await list.getByTestId('conversation-item').allTextContents()).not.toContain('Fruit talk');
    expect(await scrollsSideways(page)).toBe(false);
    await page.context().close();
  }, 90_000);
});

describe('on a phone (390x844)', () => {
  it('never scrolls sideways, keeps the composer in reach, and lists conversations in a drawer', async () => {
    const page = await cloudPage('Phone', { width: 390, height: 844 });
    await send(page, 'A long question '.repeat(20));
    const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, view: window.innerWidth }));
    expect(widths.doc).toBe(widths.view);
    expect(await scrollsSideways(page)).toBe(false);
    for (const id of ['chat-send', 'chat-stop', 'chat-regenerate', 'chat-settings', 'conversations-drawer']) {
      const box = await page.getByTestId(id).boundingBox();
      expect(box, id).not.toBeNull();
      expect(box!.x + box!.width, id).toBeLessThanOrEqual(390);
      expect(box!.y + box!.height, id).toBeLessThanOrEqual(844);
      expect(Math.min(box!.width, box!.height), id).toBeGreaterThanOrEqual(44);
    }
    await page.getByTestId('conversations-drawer').click();
    await expect.poll(() => page.getByRole('dialog').getByTestId('conversation-item').count()).toBe(1);
    await page.getByRole('dialog').getByRole('button', { name: 'New chat' }).click();
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
    await expect.poll(() => page.getByTestId('chat-message-user').count()).toBe(0);
    await page.context().close();
  }, 60_000);
});
