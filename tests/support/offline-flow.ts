// Offline from the very first visit (README, "Offline use"), in headless Chromium with a persistent profile, as a
// person's browser keeps it between visits, written once for both backends; each backend runs it from a test file of
// its own (tests/e2e/offline-wasm.test.ts, tests/e2e/offline-webgpu.test.ts), so that Vitest runs the two side by
// side rather than one after the other in one file (each has its own scratch folder, server, port and profile).
// First visit: the demo model loads from Chat in one click, answers, and is kept; the browser closes. Reopened with
// the server stopped and the network off, the app loads that model by itself and answers, with no visit to Models
// and no reload; so does a second tab and an ordinary reload. The conversation started offline reaches the account
// when the network returns, and a message to a cloud provider while offline is refused with the draft kept. A hard
// reload skips the service worker; the page it gives still answers after the network goes. An update published
// while the app is open is offered and keeps the models; removing the last model frees it and ONNX Runtime.
// Its page scripts use the DOM: the e2e TypeScript project checks it (tsconfig.node.json leaves it out).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClient, launchPersistentChromium } from './browser.ts';
import { type ServerProcess, freePort, startServer } from './server-process.ts';

/**
 * `slow`: how much longer each step may take. SwiftShader runs WebGPU on the CPU (no GPU here) and compiles its
 * shaders again at every load: a load and an answer there take about 50 s on a quiet 2-core machine, more while
 * other test files share it. These tests are about what works, not how fast.
 */
export const OFFLINE_BACKENDS = {
  wasm: { label: 'WASM', mode: 'no-gpu', slow: 1 },
  webgpu: { label: 'WebGPU', mode: 'webgpu', slow: 3 },
} as const;
const NANO = 'nano-shakespeare';
const LOAD_TIMEOUT = 60_000;

/** Sends `prompt` on the Chat screen (already open) and returns the new answer's readout once it is complete. */
async function chat(page: Page, prompt: string, timeout = LOAD_TIMEOUT): Promise<string> {
  // The tab in use is the one in front: a tab left behind another (the second tab, the hard-reload tab) draws no
  // frames, and Playwright's waits and clicks go by frames.
  await page.bringToFront();
  const readouts = page.getByTestId('answer-readout');
  const before = await readouts.count();
  await page.getByTestId('chat-input').fill(prompt);
  // The click as a DOM event: Playwright's click waits for the button to be stable over animation frames, and a tab
  // that was just brought back in front (the hard-reload tab, after the ordinary one) may draw none for a while.
  await page.getByTestId('chat-send').dispatchEvent('click');
  await readouts.nth(before).waitFor({ timeout });
  return (await readouts.nth(before).textContent()) ?? '';
}

/** The page's main-frame navigations from now on: the tests prove that no reload happened before the first answer. */
function navigations(page: Page): string[] {
  const seen: string[] = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) seen.push(frame.url());
  });
  return seen;
}

/** Every value the chat's load progress takes (`data-phase`), however briefly. */
async function watchLoadPhases(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (globalThis as unknown as { __loadPhases: string[] }).__loadPhases = seen;
    new MutationObserver(() => {
      const phase = document.querySelector('[data-testid="chat-load-progress"]')?.getAttribute('data-phase');
      if (phase && seen.at(-1) !== phase) seen.push(phase);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-phase'] });
  });
  return () => page.evaluate(() => (globalThis as unknown as { __loadPhases: string[] }).__loadPhases);
}

/**
 * Registers the offline flow on `backend`, as one describe block of the calling test file: `every` case, or only the
 * `backend` ones (what differs by backend: the first visit, which keeps that backend's runtime; the reopen offline,
 * which loads it; and removing the last model, which frees it).
 */
export function describeOfflineFromFirstVisit(
  backend: keyof typeof OFFLINE_BACKENDS,
  cases: 'every' | 'backend' = 'every',
): void {
  const { label, mode, slow } = OFFLINE_BACKENDS[backend];
  describe(`offline from the first visit, on ${label}`, () => {
    const loadTimeout = LOAD_TIMEOUT * slow;
    let dir: string;
    let profile: string;
    let serverEnv: Record<string, string>;
    let server: ServerProcess | null = null;
    let context: BrowserContext | null = null;
    let page: Page;
    const offlinePrompt = `Speak, offline on ${label}`;

    async function start(dist: 'dist-1' | 'dist-2'): Promise<string> {
      // Two minutes, as the other browser files allow (tests/support/app-server.ts): tsx starts slowly on a busy machine.
      server = await startServer({ ...serverEnv, CLIENT_DIST_DIR: path.join(dir, dist) }, 120_000);
      return server.url;
    }

    async function stop(): Promise<void> {
      server?.child.kill('SIGTERM');
      await server?.exited;
      server = null;
    }

    /** The server's origin: fixed, so the profile's service worker and caches belong to it across restarts. */
    let origin: string;

    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), `mesh-e2e-offline-${backend}-`));
      // Two builds of the app: the one first visited, and a newer one published while it is open (built once for
      // both files: tests/support/browser.ts keeps builds by their sources).
      await buildClient(path.join(dir, 'dist-1'), 'one');
      await buildClient(path.join(dir, 'dist-2'), 'two');
    }, 180_000);

    beforeAll(async () => {
      profile = path.join(dir, `profile-${backend}`);
      // A fixed port: the server stops and starts again on the same origin (the profile's storage belongs to it).
      serverEnv = { DATA_DIR: path.join(dir, `data-${backend}`), PORT: String(await freePort()) };
      origin = await start('dist-1');
    }, 150_000 * slow);

    afterAll(async () => {
      await context?.close();
      await stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it(
      'first visit: Chat loads the demo model in one click, with its progress, answers, and keeps it for offline use',
      async () => {
        context = await launchPersistentChromium(profile, mode);
        page = context.pages()[0] ?? (await context.newPage());
        const navigated = navigations(page);
        await page.goto(`${origin}/`);
        const phases = await watchLoadPhases(page);
        await page.getByTestId('chat-load-demo').click();
        await page.getByTestId('backend-badge').filter({ hasText: label }).waitFor({ timeout: loadTimeout });
        // The files were saved to the device on the way (Downloading), then loaded.
        expect(await phases()).toEqual(expect.arrayContaining(['Downloading', 'Loading']));
        const readout = await chat(page, 'Good morrow, what news?', loadTimeout);
        expect(readout).toMatch(new RegExp(`^Nano Shakespeare \\(demo\\) on this device · ${label} · TTFT \\d+ ms`));
        // Kept for next time, runtime included: the real event, not a guess at how long keeping takes.
        await page.locator('[data-testid="offline-ready"][data-state="kept"]').waitFor({ timeout: loadTimeout });
        // The service worker took control of this first page on its first install, with no reload.
        expect(
          await page.evaluate(() =>
            navigator.serviceWorker.ready.then(() => navigator.serviceWorker.controller !== null),
          ),
        ).toBe(true);
        expect(navigated).toEqual([`${origin}/`]);

        // Signed in, so that the conversation started offline later has an account to go to.
        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
        await page.getByTestId('account-username').fill(`offline-${backend}`);
        await page.getByTestId('account-password').fill('correct horse battery');
        await page.getByTestId('account-submit').click();
        await page
          .getByTestId('account-user')
          .filter({ hasText: `Signed in as offline-${backend}` })
          .waitFor({ timeout: 15_000 });
        await context.close();
        context = null;
      },
      180_000 * slow,
    );

    it(
      'reopened with the server stopped and the network off, loads that model by itself and answers: no visit to Models, no reload',
      async () => {
        await stop();
        context = await launchPersistentChromium(profile, mode, { offline: true });
        page = context.pages()[0] ?? (await context.newPage());
        const navigated = navigations(page);
        await page.goto(`${origin}/`);
        expect(await page.getByTestId('offline-indicator').textContent()).toBe('Offline');
        await page.getByTestId('backend-badge').filter({ hasText: label }).waitFor({ timeout: loadTimeout });
        const readout = await chat(page, offlinePrompt, loadTimeout);
        expect(readout).toMatch(new RegExp(`on this device · ${label} · TTFT`));
        expect(navigated).toEqual([`${origin}/`]);
        expect(new URL(page.url()).pathname).toBe('/');
        expect(await page.getByTestId('conversations-kept').textContent()).toMatch(
          /saved to your account when the network is back/,
        );
      },
      120_000 * slow,
    );

    // The cases between are the same on every backend (tabs, reloads, the sync, the service worker, updates): only
    // `every` runs them (the WASM file).
    if (cases === 'every') {
      it(
        'a second tab opened offline shows the kept catalogue with its date and what is kept, loads the model and answers',
        async () => {
          if (!context) throw new Error('needs the reopened browser of the test before');
          const second = await context.newPage();
          try {
            await second.goto(`${origin}/models`);
            expect(await second.getByTestId('catalogue-kept').textContent()).toMatch(
              /catalogue from .+, kept on this device/,
            );
            const card = second.locator(`[data-testid="model-card"][data-model-id="${NANO}"]`);
            await card.getByTestId('backend-badge').filter({ hasText: label }).waitFor({ timeout: loadTimeout });
            const panel = second.locator('[data-testid="storage-panel"][data-measured="true"]');
            await panel.locator(`[data-testid="storage-row"][data-kind="runtime"][data-id="${backend}"]`).waitFor();
            const kinds = await panel
              .getByTestId('storage-row')
              .evaluateAll((rows) =>
                rows.map((row) => `${row.getAttribute('data-kind')}:${row.getAttribute('data-id')}`),
              );
            expect(kinds).toEqual(expect.arrayContaining(['app:app', `runtime:${backend}`, `model:${NANO}`]));
            const modelBytes = Number(
              await panel.locator(`[data-testid="storage-row"][data-id="${NANO}"]`).getAttribute('data-bytes'),
            );
            expect(modelBytes).toBeGreaterThan(1024 * 1024);
            await second.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Chat' }).click();
            expect(await chat(second, 'And in the second tab?', loadTimeout)).toMatch(
              new RegExp(`on this device · ${label}`),
            );
          } finally {
            await second.close();
            await page.bringToFront();
          }
        },
        120_000 * slow,
      );

      it(
        'an ordinary reload offline loads the model again by itself and answers',
        async () => {
          await page.reload();
          expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
          await page.getByTestId('backend-badge').filter({ hasText: label }).waitFor({ timeout: loadTimeout });
          expect(await chat(page, 'Once more, after a reload', loadTimeout)).toMatch(
            new RegExp(`on this device · ${label}`),
          );
        },
        120_000 * slow,
      );

      it(
        'when the network returns, the conversation started offline goes to the account; a cloud message offline is refused and its draft kept',
        async () => {
          if (!context) throw new Error('needs the reopened browser');
          await start('dist-1');
          await context.setOffline(false);
          // The account now holds the conversation begun offline, and the device no longer keeps a copy for it.
          const titles = async () =>
            page.evaluate(async () => {
              const response = await fetch('/api/trpc/conversation.list');
              const body = (await response.json()) as { result?: { data?: { title: string }[] } };
              return body.result?.data?.map((c) => c.title) ?? [];
            });
          // The sync sends each kept conversation in turn, several calls each (src/client/features/chat/conversation-sync.ts):
          // at a load average near 30, one of this flow's three had arrived after 30 s.
          await expect.poll(titles, { timeout: 90_000 }).toContain(offlinePrompt);
          await page.getByTestId('conversations-kept').filter({ hasText: 'Kept with your account.' }).waitFor();

          const route = page.getByTestId('chat-route');
          await route.locator('option', { hasText: 'Stub' }).waitFor({ state: 'attached' });
          await route.selectOption({ label: 'Stub (canned replies, no model)' });
          await context.setOffline(true);
          await page.getByTestId('offline-indicator').filter({ hasText: 'Offline' }).waitFor();
          const draft = 'Is the cloud there?';
          const before = await page.getByTestId('chat-message-user').count();
          await page.getByTestId('chat-input').fill(draft);
          await page.getByTestId('chat-send').click();
          expect(await page.getByRole('alert').textContent()).toMatch(
            /You are offline, and Stub .* answers through the server: your message was not sent/,
          );
          expect(await page.getByTestId('chat-input').inputValue()).toBe(draft);
          expect(await page.getByTestId('chat-message-user').count()).toBe(before);
          await context.setOffline(false);
          await route.selectOption('device');
        },
        120_000 * slow,
      );

      it(
        'after a hard reload (which skips the service worker), the page still answers once the network is gone',
        async () => {
          if (!context) throw new Error('needs the reopened browser');
          // A tab of its own: the rest of the tests go on in the ordinary one.
          const hard = await context.newPage();
          try {
            await hard.goto(`${origin}/`);
            // The app is up, from the service worker; the hard reload need not wait for its model to load first (a new
            // tab loading the kept model by itself is the test of the second tab, and a load on SwiftShader is long).
            await hard.getByTestId('chat-input').waitFor();
            expect(await hard.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
            const cdp = await context.newCDPSession(hard);
            const loaded = hard.waitForEvent('load');
            await cdp.send('Page.reload', { ignoreCache: true });
            await loaded;
            await cdp.detach();
            // Chromium bypasses the service worker for a hard reload: this page is not controlled, like a first visit.
            expect(await hard.evaluate(() => navigator.serviceWorker.controller)).toBeNull();
            await hard.getByTestId('backend-badge').filter({ hasText: label }).waitFor({ timeout: loadTimeout });
            await stop();
            await context.setOffline(true);
            expect(await chat(hard, 'No network now', loadTimeout)).toMatch(new RegExp(`on this device · ${label}`));
          } finally {
            await context.setOffline(false);
            await hard.close();
            // The ordinary tab is the one in front again: a tab left behind another draws no frames, and clicks wait on them.
            await page.bringToFront();
          }
        },
        120_000 * slow,
      );

      it(
        'offers a version published while the app is open; accepting it keeps the models and loads the last one again',
        async () => {
          // The ordinary tab has stayed open since its reload, its model loaded, while the server was stopped: the new
          // version is published (the server comes back with it) while the app is open on the old one.
          expect(await page.getByTestId('app-build').textContent()).toContain('build one');
          expect(await page.getByTestId('backend-badge').filter({ hasText: label }).count()).toBe(1);
          await start('dist-2');
          await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r?.update()));
          await page.getByTestId('update-prompt').waitFor({ timeout: 30_000 });
          // Waiting until accepted: the page still runs the first version.
          expect(await page.getByTestId('app-build').textContent()).toContain('build one');
          await page.getByTestId('update-reload').click();
          await page.getByTestId('app-build').filter({ hasText: 'build two' }).waitFor({ timeout: 30_000 });
          await page.getByTestId('backend-badge').filter({ hasText: label }).waitFor({ timeout: loadTimeout });
          // The click as a DOM event (the app's own navigation, no reload): right after a load on SwiftShader's WebGPU the
          // browser's GPU process can be busy for tens of seconds on two cores, and real input waits for it to draw a frame
          // (the page itself answers scripts all along).
          await page
            .getByRole('navigation', { name: 'Main' })
            .getByRole('link', { name: 'Models' })
            .dispatchEvent('click');
          const card = page.locator(`[data-testid="model-card"][data-model-id="${NANO}"]`);
          await card.getByTestId('model-where').filter({ hasText: 'on this device' }).waitFor({ timeout: loadTimeout });
        },
        180_000 * slow,
      );
    }

    it(
      'removing the last model frees its bytes and ONNX Runtime, and the app no longer loads it when it opens',
      async () => {
        if (cases === 'backend') {
          // Where the cases left out would have brought the app: the server up, the network back, on Models.
          await start('dist-1');
          if (!context) throw new Error('needs the reopened browser');
          await context.setOffline(false);
          await page
            .getByRole('navigation', { name: 'Main' })
            .getByRole('link', { name: 'Models' })
            .dispatchEvent('click');
        }
        const card = page.locator(`[data-testid="model-card"][data-model-id="${NANO}"]`);
        const panel = page.locator('[data-testid="storage-panel"][data-measured="true"]');
        await panel.locator(`[data-testid="storage-row"][data-kind="model"][data-id="${NANO}"]`).waitFor();
        await card.getByTestId('model-remove').click();
        await card
          .getByTestId('model-status')
          .filter({ hasText: 'Removed from this device, with ONNX Runtime' })
          .waitFor();
        await panel.locator('[data-testid="storage-row"][data-kind="model"]').first().waitFor({ state: 'detached' });
        expect(await panel.locator('[data-testid="storage-row"][data-kind="runtime"]').count()).toBe(0);
        const left = await page.evaluate(async () => ({
          models: (await (await caches.open('mesh-models')).keys()).length,
          runtime: await caches.has('mesh-runtime'),
        }));
        expect(left).toEqual({ models: 0, runtime: false });
        await page.goto(`${origin}/`);
        await page.getByTestId('chat-load-demo').waitFor();
        expect(await page.getByTestId('chat-restore').count()).toBe(0);
        expect(await page.getByTestId('backend-badge').count()).toBe(0);
      },
      120_000 * slow,
    );
  });
}
