// API keys on the Account screen in headless Chromium: an account makes a key, sees it once, uses it against /v1,
// and revokes it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClient, launchChromium } from '../support/browser.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

let dir: string;
let server: ServerProcess;
let browser: Browser;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-e2e-keys-'));
  await buildClient(path.join(dir, 'dist'));
  server = await startServer({ DATA_DIR: path.join(dir, 'data'), CLIENT_DIST_DIR: path.join(dir, 'dist') });
  browser = await launchChromium('no-gpu');
}, 180_000);

afterAll(async () => {
  await browser?.close();
  server?.child.kill('SIGTERM');
  await server?.exited;
  await rm(dir, { recursive: true, force: true });
});

const models = (key: string) => fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });

describe('API keys on the Account screen', () => {
  it('creates a key shown once, which then works against /v1, lists it, and revokes it', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/account`);
    await page.getByTestId('account-username').fill('keyholder');
    await page.getByTestId('account-password').fill('correct horse battery');
    await page.getByTestId('account-submit').click();
    await expect
      .poll(() => page.getByTestId('account-user').textContent(), { timeout: 15_000 })
      .toMatch(/Signed in as keyholder/);

    await page.getByTestId('api-key-name').fill('my editor');
    await page.getByTestId('api-key-create').click();
    await expect
      .poll(() => page.getByTestId('api-key-secret').textContent(), { timeout: 15_000 })
      .toMatch(/^mnl_[0-9A-Za-z]{43}$/);
    const key = (await page.getByTestId('api-key-secret').textContent()) ?? '';
    await expect.poll(() => page.getByTestId('api-key-row').count(), { timeout: 15_000 }).toBe(1);
    const row = page.getByTestId('api-key-row');
    expect(await row.textContent()).toContain('my editor');
    expect(await row.textContent()).toContain(key.slice(0, 12));
    expect(await row.textContent()).not.toContain(key.slice(12));
    expect((await models(key)).status).toBe(200);

    await row.getByTestId('api-key-revoke').click();
    await expect.poll(() => row.textContent(), { timeout: 15_000 }).toMatch(/revoked/);
    expect(await row.getByTestId('api-key-revoke').count()).toBe(0);
    expect((await models(key)).status).toBe(401);

    // A reload shows the list, never the key again.
    await page.reload();
    await expect.poll(() => page.getByTestId('api-key-row').count(), { timeout: 15_000 }).toBe(1);
    expect(await page.getByTestId('api-key-secret').count()).toBe(0);
  });
});
