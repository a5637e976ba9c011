// API keys on the Account screen in headless Chromium: an account makes a key, sees it once, uses it against /v1,
// and revokes it.
import { describe, expect, it } from 'vitest';
import { useAppServer } from '../support/app-server.ts';

const app = useAppServer({ name: 'keys' });

const models = (key: string) => fetch(`${app.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });

describe('API keys on the Account screen', () => {
  it('creates a key shown once, which then works against /v1, lists it, and revokes it', async () => {
    const page = await app.newPage();
    await page.goto(`${app.url}/account`);
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
