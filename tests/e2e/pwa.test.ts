// The PWA in headless Chromium (no GPU, so WASM), against the real server process and a fake Hub: first visit
// and chat with the bundled model, a model downloaded through the proxy with its phases in order, offline reload,
// an update to a new build that keeps the models, a tiny storage quota, and cloud chat over SSE.
// Screenshots of the Models and Chat screens go to docs/screenshots when SCREENSHOTS=1, at desktop and phone size
// (README uses them).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import { useAppServer } from '../support/app-server.ts';
import { publishModels } from '../support/model-fixtures.ts';
import { ROOT } from '../support/server-process.ts';

const hub = new FakeHub();
const app = useAppServer({
  name: 'pwa',
  services: [hub],
  buildId: 'one',
  // A fixed port: the update test restarts the server on the same origin with a new build.
  fixedPort: true,
  async env(dir) {
    const { manifestPath } = await publishModels(hub, dir, [
      // Listed without files, like the built-in Hub models: the server derives them as transformers.js picks them.
      { id: 'pwa-tiny', options: { layers: 2, hidden: 64, heads: 4, seed: 5, maxPositions: 256 }, derived: true },
    ]);
    return { HF_ENDPOINT: hub.origin, MANIFEST_PATH: manifestPath };
  },
});
let context: BrowserContext;
let page: Page;
const screenshots = process.env.SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'screenshots') : null;

beforeAll(async () => {
  context = await app.browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  if (screenshots) await mkdir(screenshots, { recursive: true });
});

/** The screen as a phone shows it (390x844), then back to the desktop size the tests go on with. */
async function phoneScreenshot(p: Page, file: string): Promise<void> {
  if (!screenshots) return;
  const desktop = p.viewportSize();
  await p.setViewportSize({ width: 390, height: 844 });
  await p.evaluate(() => window.scrollTo(0, 0));
  await p.screenshot({ path: path.join(screenshots, file) });
  if (desktop) await p.setViewportSize(desktop);
}

const card = (p: Page, id: string) => p.locator(`[data-testid="model-card"][data-model-id="${id}"]`);

/** Records every value `data-phase` takes on a model card's status, however briefly. */
async function watchPhases(p: Page, id: string): Promise<() => Promise<string[]>> {
  await p.evaluate((modelId) => {
    const target = document.querySelector(
      `[data-testid="model-card"][data-model-id="${modelId}"] [data-testid="model-status"]`,
    );
    const seen: string[] = [];
    (globalThis as unknown as { __phases: string[] }).__phases = seen;
    if (!target) return;
    new MutationObserver(() => {
      const phase = target.getAttribute('data-phase') ?? '';
      if (seen.at(-1) !== phase) seen.push(phase);
    }).observe(target, { attributes: true, attributeFilter: ['data-phase'] });
  }, id);
  return () => p.evaluate(() => (globalThis as unknown as { __phases: string[] }).__phases);
}

/**
 * Sends a prompt on the Chat screen with a fixed seed; returns the readout, how many different lengths the answer
 * grew through, and the answer.
 */
async function chat(p: Page, prompt: string): Promise<{ readout: string; growth: number; answer: string }> {
  await p.getByRole('link', { name: 'Chat' }).click();
  // A fixed seed, so the answer is the same long one on every run (a random seed may draw a few words).
  await p.getByTestId('chat-seed').fill('4242');
  await p.evaluate(() => {
    const lengths = new Set<number>();
    (globalThis as unknown as { __lengths: Set<number> }).__lengths = lengths;
    new MutationObserver(() => {
      const answers = document.querySelectorAll('[data-testid="chat-message-assistant"]');
      lengths.add(answers[answers.length - 1]?.textContent?.length ?? 0);
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  });
  const before = await p.getByTestId('answer-readout').count();
  await p.getByTestId('chat-input').fill(prompt);
  await p.getByTestId('chat-send').click();
  await expect.poll(() => p.getByTestId('answer-readout').count(), { timeout: 60_000 }).toBe(before + 1);
  const readout = (await p.getByTestId('answer-readout').last().textContent()) ?? '';
  const growth = await p.evaluate(() => (globalThis as unknown as { __lengths: Set<number> }).__lengths.size);
  // The answer's own text, without its readout and its actions.
  const answer = await p
    .getByTestId('chat-message-assistant')
    .last()
    .evaluate((item) => {
      const copy = item.cloneNode(true) as Element;
      for (const extra of copy.querySelectorAll('[data-testid="answer-readout"], [role="group"]')) extra.remove();
      return copy.textContent ?? '';
    });
  return { readout, growth, answer };
}

describe('the PWA', () => {
  it('on a first visit lists the nano model, loads it on WASM and streams an answer with its readout', async () => {
    await page.goto(`${app.url}/models`);
    await expect.poll(() => card(page, 'nano-shakespeare').count(), { timeout: 30_000 }).toBe(1);
    await expect.poll(() => page.getByTestId('device-storage').textContent()).toMatch(/used of .* available/);
    await card(page, 'nano-shakespeare').getByTestId('model-load').click();
    await expect
      .poll(() => card(page, 'nano-shakespeare').getByTestId('backend-badge').textContent(), { timeout: 60_000 })
      .toBe('WASM');
    expect(await card(page, 'nano-shakespeare').getByTestId('model-where').textContent()).toContain('on this device');

    const { readout, growth, answer } = await chat(page, 'Good morrow, what news?');
    expect(readout).toMatch(/^Nano Shakespeare \(demo\) on this device · WASM · TTFT \d+ ms · [\d.]+ tok\/s/);
    expect(answer.length).toBeGreaterThan(20);
    // Tokens streamed in: the answer grew through several lengths before it was complete.
    expect(growth).toBeGreaterThan(3);
    expect(await page.getByTestId('offline-indicator').textContent()).toBe('Online');
    // Cross-origin isolated (COOP + COEP credentialless), so ONNX Runtime Web may use threads where there are cores.
    expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true);
    if (screenshots) {
      await page.screenshot({ path: path.join(screenshots, 'chat.png') });
      await phoneScreenshot(page, 'chat-phone.png');
    }
  }, 120_000);

  it('downloads a generated model through the proxy with its phases in order, then chats with it', async () => {
    // Asking the server to fetch a model needs an account: sign up first, and log out at the end.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
    await page.getByTestId('account-username').fill('pwa-downloader');
    await page.getByTestId('account-password').fill('correct horse battery');
    await page.getByTestId('account-submit').click();
    await expect
      .poll(() => page.getByTestId('account-user').textContent(), { timeout: 15_000 })
      .toMatch(/Signed in as pwa-downloader/);
    await page.getByRole('link', { name: 'Models' }).click();
    const tiny = card(page, 'pwa-tiny');
    await expect.poll(() => tiny.getByTestId('model-where').textContent()).toBe('on the Hub');
    const phases = await watchPhases(page, 'pwa-tiny');
    await tiny.getByTestId('model-download').click();
    await expect
      .poll(() => tiny.getByTestId('model-where').textContent(), { timeout: 60_000 })
      .toBe('cached on the server · on this device');
    await tiny.getByTestId('model-load').click();
    await expect.poll(() => tiny.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');
    expect((await phases()).filter((p) => p !== 'Idle')).toEqual([
      'Fetching',
      'Preparing',
      'Downloading',
      'Loading',
      'Ready',
    ]);
    // The server fetched it from the fake Hub once, through its CDN redirect.
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/')).length).toBeGreaterThan(0);
    if (screenshots) {
      await page.screenshot({ path: path.join(screenshots, 'models.png'), fullPage: true });
      await phoneScreenshot(page, 'models-phone.png');
    }

    const { readout } = await chat(page, 'hello');
    expect(readout).toMatch(/^Generated pwa-tiny on this device · WASM/);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
    await page.getByTestId('account-logout').click();
    await expect.poll(() => page.getByTestId('account-user').count(), { timeout: 15_000 }).toBe(0);
  }, 120_000);

  it('offline: reloads from the service worker, loads the model from the device and chats; cloud is marked unavailable', async () => {
    await page.goto(`${app.url}/models`);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await context.setOffline(true);
    try {
      await page.reload({ timeout: 15_000 });
      await expect.poll(() => page.getByTestId('offline-indicator').textContent(), { timeout: 15_000 }).toBe('Offline');
      await expect.poll(() => card(page, 'nano-shakespeare').count(), { timeout: 30_000 }).toBe(1);
      await card(page, 'nano-shakespeare').getByTestId('model-load').click();
      await expect
        .poll(() => card(page, 'nano-shakespeare').getByTestId('backend-badge').textContent(), { timeout: 60_000 })
        .toBe('WASM');
      const { readout } = await chat(page, 'Speak again, bright angel');
      expect(readout).toMatch(/on this device · WASM · TTFT/);
      expect(await page.getByTestId('providers-offline').textContent()).toMatch(/unavailable offline/);
    } finally {
      await context.setOffline(false);
    }
  }, 120_000);

  it('offers an update when a new build is served, and the models on the device survive it', async () => {
    expect(await page.getByTestId('app-build').textContent()).toContain('build one');
    await app.restart('two');
    await page.goto(`${app.url}/models`);
    await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r?.update()));
    await expect.poll(() => page.getByTestId('update-prompt').count(), { timeout: 30_000 }).toBe(1);
    await page.getByTestId('update-reload').click();
    await expect.poll(() => page.getByTestId('app-build').textContent(), { timeout: 30_000 }).toContain('build two');
    await expect
      .poll(() => card(page, 'pwa-tiny').getByTestId('model-where').textContent(), { timeout: 15_000 })
      .toContain('on this device');
    expect(await card(page, 'nano-shakespeare').getByTestId('model-where').textContent()).toContain('on this device');
  }, 180_000);

  it('with a tiny storage quota, saving a model fails with a clear message and leaves nothing half-saved', async () => {
    const small = await app.browser.newContext();
    try {
      const p = await small.newPage();
      const cdp = await small.newCDPSession(p);
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: app.url, quotaSize: 64 * 1024 });
      await p.goto(`${app.url}/models`);
      await card(p, 'pwa-tiny').getByTestId('model-download').click();
      await expect
        .poll(() => card(p, 'pwa-tiny').getByRole('alert').textContent(), { timeout: 30_000 })
        .toMatch(
          /Not enough storage on this device for this model .* Remove a model from this device or free up space/,
        );
      const left = await p.evaluate(async () => {
        const cache = await caches.open('mesh-models');
        return (await cache.keys()).map((r) => r.url).filter((u) => u.includes('pwa-tiny'));
      });
      expect(left).toEqual([]);
      expect(await card(p, 'pwa-tiny').getByTestId('model-where').textContent()).not.toContain('on this device');
    } finally {
      await small.close();
    }
  }, 60_000);

  it('streams a cloud answer (the stub provider) over SSE as a new guest; an image in it loads nothing', async () => {
    // A browser of its own, as a new guest's is: not the page the tests above took offline, through an update and a
    // server restart.
    const guest = await app.browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const p = await guest.newPage();
      await p.goto(`${app.url}/`);
      await expect
        .poll(() => p.getByTestId('chat-route').locator('option').allTextContents())
        .toContain('Stub (canned replies, no model)');
      await p.getByTestId('chat-route').selectOption({ label: 'Stub (canned replies, no model)' });
      // The stub quotes the prompt, so its markdown answer holds this image: on this origin, which the CSP allows.
      const probe = `${app.url}/probe-image.png`;
      const probed: string[] = [];
      p.on('request', (request) => {
        if (request.url().startsWith(probe)) probed.push(request.url());
      });
      const before = await p.getByTestId('answer-readout').count();
      await p.getByTestId('chat-input').fill(`Hello ![probe](${probe}) from the browser`);
      await p.getByTestId('chat-send').click();
      await expect.poll(() => p.getByTestId('answer-readout').count(), { timeout: 30_000 }).toBe(before + 1);
      expect(await p.getByTestId('answer-readout').last().textContent()).toMatch(/^Stub .*TTFT \d+ ms/);
      expect((await guest.cookies()).map((c) => c.name)).toContain('mesh_session');

      const answer = p.getByTestId('chat-message-assistant').last();
      expect(await answer.locator('img').count()).toBe(0);
      const link = answer.locator(`a[href="${probe}"]`);
      expect(await link.textContent()).toBe(`probe (${probe})`);
      expect(await link.getAttribute('rel')).toBe('noopener noreferrer nofollow');
      expect(await link.getAttribute('target')).toBe('_blank');
      await p.waitForTimeout(500);
      expect(probed).toEqual([]);
    } finally {
      await guest.close();
    }
  }, 60_000);
});
