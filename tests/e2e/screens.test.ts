// The Models, Rooms and Account screens on the UI kit, in headless Chromium at desktop and phone size, against the
// real server process and a fake Hub: a model's bytes on this device, Unload, Cancel of a server download, Cancel of a
// save to this device (nothing left half-saved, the card as before), Remove all models (after a confirmation); a room
// that names a peer it has no direct route to; and axe-core on every screen, in both themes and both sizes, with no
// serious or critical violation and a level-one heading. Pages never scroll sideways.
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import { useAppServer } from '../support/app-server.ts';
import { scrollsSideways } from '../support/browser.ts';
import { publishModels } from '../support/model-fixtures.ts';
import { downloadModel, signUpCookie } from '../support/server-process.ts';

const AXE_PATH = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const NANO = 'nano-shakespeare';
const SIZES = [
  { name: 'desktop', viewport: { width: 1280, height: 900 } },
  { name: 'phone', viewport: { width: 390, height: 844 } },
] as const;

const hub = new FakeHub();
const app = useAppServer({
  name: 'screens',
  services: [hub],
  async env(dir) {
    // Per size, a model whose server download the test holds part-way, so that it can be cancelled, and one the
    // server holds whose save to the device the test holds part-way.
    const { manifestPath } = await publishModels(
      hub,
      dir,
      SIZES.flatMap(({ name }) => [
        { id: `held-${name}`, options: { layers: 1, hidden: 32, heads: 2, seed: 3 } },
        { id: `saved-${name}`, options: { layers: 1, hidden: 32, heads: 2, seed: 4 } },
      ]),
    );
    return { HF_ENDPOINT: hub.origin, MANIFEST_PATH: manifestPath };
  },
});

beforeAll(async () => {
  const cookie = await signUpCookie(app.url, 'saved-keeper');
  for (const { name } of SIZES) await downloadModel(app.url, cookie, `saved-${name}`);
}, 120_000);

const card = (page: Page, id: string) => page.locator(`[data-testid="model-card"][data-model-id="${id}"]`);

async function serverDownloadPhase(id: string): Promise<string | undefined> {
  const input = encodeURIComponent(JSON.stringify({ id }));
  const response = await fetch(`${app.url}/api/trpc/models.status?input=${input}`);
  return ((await response.json()) as { result: { data: { phase: string } | null } }).result.data?.phase;
}

/**
 * Every ICE candidate this page receives gets an address in TEST-NET-1 (RFC 5737), which nothing routes: with both
 * pages so, ICE finds no pair that works, as between two strict NATs with no TURN server.
 */
const NO_ROUTE_SCRIPT = `
  const unroutable = (line) => line.replace(/^((?:\\S+ ){4})\\S+/, '$1192.0.2.1');
  const add = RTCPeerConnection.prototype.addIceCandidate;
  RTCPeerConnection.prototype.addIceCandidate = function (candidate, ...rest) {
    const rewritten = candidate && candidate.candidate ? { ...candidate, candidate: unroutable(candidate.candidate) } : candidate;
    return add.call(this, rewritten, ...rest);
  };
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description, ...rest) {
    const stripped = description && description.sdp
      ? { type: description.type, sdp: description.sdp.replace(/^a=candidate:.*\\r\\n/gm, '') }
      : description;
    return setRemote.call(this, stripped, ...rest);
  };
`;

// Concurrent with the Models and Cancel tests below: this one spends most of its time waiting for Chromium to give up on
// ICE (about 30 s), and the two share nothing but the server and the browser (contexts of their own, other accounts).
describe.concurrent('the room screen', () => {
  it('names a peer it has no direct route to, at desktop and phone size', async ({ expect }) => {
    const ada = await app.guest('Ada', { viewport: SIZES[0].viewport });
    const bob = await app.guest('Bob', { viewport: SIZES[1].viewport });
    await ada.context().addInitScript({ content: NO_ROUTE_SCRIPT });
    await bob.context().addInitScript({ content: NO_ROUTE_SCRIPT });
    await Promise.all([ada.goto(`${app.url}/rooms/global`), bob.goto(`${app.url}/rooms/global`)]);
    for (const [page, other] of [
      [ada, 'Bob'],
      [bob, 'Ada'],
    ] as const) {
      const notice = page.locator(`[data-testid="peer-no-route"][data-peer-name="${other}"]`);
      // Chromium gives up on ICE about 30 s after the offer when no candidate pair answers.
      await notice.waitFor({ timeout: 90_000 });
      expect(await notice.textContent()).toBe(`No direct route to ${other}: a TURN server is needed.`);
      const row = page.locator(`[data-testid="room-peer"][data-peer-name="${other}"]`);
      expect(await row.getByTestId('peer-state').getAttribute('data-state')).not.toBe('open');
      expect(await scrollsSideways(page)).toBe(false);
    }
    await ada.context().close();
    await bob.context().close();
  }, 150_000);
});

// One after another, as written, while the room test above runs beside them. Each test asserts with its own `expect`
// (a test run beside another must: the global one cannot tell which test is running).
describe.concurrent('the Models screen, beside the room test', () => {
  describe.sequential.each(SIZES)('the Models screen at $name size', ({ name, viewport }) => {
    it("shows each model's bytes on this device, unloads the loaded model and loads it again", async ({ expect }) => {
      const page = await app.account(`models-${name}`, { viewport });
      await page.goto(`${app.url}/models`);
      const nano = card(page, NANO);
      await nano.getByTestId('model-load').click();
      await expect.poll(() => nano.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');

      // The card's bytes are what the storage panel measured for the model's files.
      const row = page.locator(`[data-testid="storage-row"][data-kind="model"][data-id="${NANO}"]`);
      await row.waitFor({ timeout: 15_000 });
      const rowBytes = Number(await row.getAttribute('data-bytes'));
      expect(rowBytes).toBeGreaterThan(0);
      await expect
        .poll(() => nano.getByTestId('model-device-bytes').getAttribute('data-bytes'), { timeout: 15_000 })
        .toBe(String(rowBytes));
      expect(await nano.getByTestId('model-device-bytes').textContent()).toMatch(/^[\d.]+ (KB|MB|GB)$/);
      expect(await scrollsSideways(page)).toBe(false);

      await nano.getByTestId('model-unload').click();
      await expect.poll(() => nano.getByTestId('backend-badge').count(), { timeout: 15_000 }).toBe(0);
      expect(await nano.getByTestId('model-status').textContent()).toMatch(/Unloaded/);
      expect(await nano.getByTestId('model-load').textContent()).toBe('Load');
      expect(await nano.getByTestId('model-unload').count()).toBe(0);
      // The chat knows: nothing is loaded on this device any more.
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Chat' }).click();
      await expect
        .poll(() => page.getByTestId('chat-route').locator('option[value="device"]').textContent())
        .toBe('this device (no model loaded)');
      // A new worker takes the next load (the old one was ended to free its memory).
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).click();
      await nano.getByTestId('model-load').click();
      await expect.poll(() => nano.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');
      await page.context().close();
    }, 180_000);

    it('cancels a server download part-way, then removes every model from the device after a confirmation', async ({
      expect,
    }) => {
      const page = await app.account(`cancel-${name}`, { viewport });
      const id = `held-${name}`;
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      // The server's fetch of the weights stops after 1 KB until the test lets it go on.
      hub.injectFault('onnx/model.onnx', { kind: 'hold', atByte: 1024, until: held }, 4);
      try {
        await page.goto(`${app.url}/models`);
        const model = card(page, id);
        await model.getByTestId('model-download').click();
        await expect
          .poll(() => model.getByTestId('model-status').getAttribute('data-phase'), { timeout: 30_000 })
          .toBe('Preparing');
        await model.getByTestId('model-cancel').click();
        await expect
          .poll(() => model.getByTestId('model-status').textContent(), { timeout: 15_000 })
          .toMatch(/Download cancelled: the server stopped fetching it/);
        expect(await model.getByTestId('model-cancel').count()).toBe(0);
        expect(await model.getByTestId('model-download').isEnabled()).toBe(true);
        expect(await serverDownloadPhase(id)).toBe('cancelled');
        expect(await model.getByTestId('model-where').textContent()).toBe('on the Hub');
      } finally {
        release();
        hub.reset();
      }

      // Something to remove: the nano model saved on this device by loading it.
      const nano = card(page, NANO);
      await nano.getByTestId('model-load').click();
      await expect.poll(() => nano.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');
      await nano.getByTestId('model-device-bytes').waitFor({ timeout: 15_000 });
      await page.getByTestId('models-remove-all').click();
      const dialog = page.getByTestId('models-remove-all-dialog');
      await dialog.waitFor();
      expect(await dialog.textContent()).toMatch(/Remove all models from this device\?/);
      expect(await scrollsSideways(page)).toBe(false);
      // Keeping them changes nothing.
      await dialog.getByRole('button', { name: 'Keep them' }).click();
      await dialog.waitFor({ state: 'detached' });
      expect(await nano.getByTestId('model-device-bytes').count()).toBe(1);
      await page.getByTestId('models-remove-all').click();
      await page.getByTestId('models-remove-all-confirm').click();
      const panel = page.getByTestId('storage-panel');
      await panel.locator('[data-testid="storage-row"][data-kind="model"]').first().waitFor({ state: 'detached' });
      expect(await panel.locator('[data-testid="storage-row"][data-kind="runtime"]').count()).toBe(0);
      expect(await page.getByTestId('model-device-bytes').count()).toBe(0);
      await expect.poll(() => nano.getByTestId('model-where').textContent()).toBe('bundled with the app');
      // No model file is left in the device cache, whichever model it belonged to.
      expect(await page.evaluate(async () => (await (await caches.open('mesh-models')).keys()).length)).toBe(0);
      await page.context().close();
    }, 180_000);
  });

  describe.sequential.each(SIZES)('Cancel during the save to this device at $name size', ({ name, viewport }) => {
    it('leaves no file of the model half-saved, and the card as it was before', async ({ expect }) => {
      // No service worker: the page's own fetches of the model files are the ones the test holds.
      const page = await app.account(`saver-${name}`, { viewport, serviceWorkers: 'block' });
      const id = `saved-${name}`;
      const repoFiles = () =>
        page.evaluate(
          async (repo) =>
            (await (await caches.open('mesh-models')).keys()).map((r) => r.url).filter((url) => url.includes(repo)),
          `/models/mesh/${id}/`,
        );
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      let reached = () => {};
      const graphAsked = new Promise<void>((resolve) => (reached = resolve));
      // The files are saved one after another, the graph last: it is held until the test lets it go.
      await page.route(`**/models/mesh/${id}/resolve/**/onnx/model.onnx`, async (route) => {
        reached();
        await held;
        await route.continue().catch(() => undefined);
      });
      try {
        await page.goto(`${app.url}/models`);
        const model = card(page, id);
        await expect.poll(() => model.getByTestId('model-where').textContent(), { timeout: 15_000 }).toMatch(/server/);
        const before = {
          where: await model.getByTestId('model-where').textContent(),
          phase: await model.getByTestId('model-status').getAttribute('data-phase'),
          downloadEnabled: await model.getByTestId('model-download').isEnabled(),
          deviceBytes: await model.getByTestId('model-device-bytes').count(),
        };
        expect(before.deviceBytes).toBe(0);
        expect(await repoFiles()).toEqual([]);

        await model.getByTestId('model-download').click();
        await graphAsked;
        await expect
          .poll(() => model.getByTestId('model-status').getAttribute('data-phase'), { timeout: 15_000 })
          .toBe('Downloading');
        // Part-way: the files before the graph are in the device's cache.
        expect((await repoFiles()).length).toBeGreaterThan(0);
        expect(await scrollsSideways(page)).toBe(false);
        await model.getByTestId('model-cancel').click();

        await expect
          .poll(() => model.getByTestId('model-status').textContent(), { timeout: 15_000 })
          .toMatch(/Download cancelled: nothing was kept on this device/);
        await expect.poll(() => repoFiles(), { timeout: 15_000 }).toEqual([]);
        expect({
          where: await model.getByTestId('model-where').textContent(),
          phase: await model.getByTestId('model-status').getAttribute('data-phase'),
          downloadEnabled: await model.getByTestId('model-download').isEnabled(),
          deviceBytes: await model.getByTestId('model-device-bytes').count(),
        }).toEqual(before);
        expect(await model.getByTestId('model-cancel').count()).toBe(0);
        expect(await scrollsSideways(page)).toBe(false);
      } finally {
        release();
      }
      // Nothing was left behind to get in the way: the same save, let through, completes.
      await page.unroute(`**/models/mesh/${id}/resolve/**/onnx/model.onnx`);
      await card(page, id).getByTestId('model-download').click();
      await expect
        .poll(() => card(page, id).getByTestId('model-status').textContent(), { timeout: 60_000 })
        .toMatch(/Saved on this device/);
      expect(await repoFiles()).toHaveLength(5);
      await page.context().close();
    }, 180_000);
  });
});

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/** axe-core's serious and critical violations on the page as it is now, and how many rules it checked and passed. */
async function axeViolations(page: Page): Promise<{ serious: string[]; passed: number; minor: string[] }> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE_PATH });
  const results = await page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: { run(context: Document): Promise<{ violations: Violation[]; passes: unknown[] }> };
      }
    ).axe;
    const { violations, passes } = await axe.run(document);
    return { violations, passed: passes.length };
  });
  const describe = (v: Violation) =>
    `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')}`;
  const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  return {
    serious: serious.map(describe),
    passed: results.passed,
    minor: results.violations.filter((v) => !serious.includes(v)).map(describe),
  };
}

describe.each(SIZES)('accessibility (axe-core) at $name size', ({ name, viewport }) => {
  it.each(['dark', 'light'] as const)(
    'finds no serious or critical violation on any screen in the %s theme',
    async (theme) => {
      // The app's CSP allows no inline script, and axe-core is injected as one: the test's own script, not the app's.
      const context = await app.browser.newContext({ viewport, bypassCSP: true });
      await context.addInitScript((choice) => localStorage.setItem('theme', choice), theme);
      const page = await context.newPage();
      const found: Record<string, string[]> = {};
      const check = async (screen: string, ready: () => Promise<unknown>) => {
        await ready();
        expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe(theme);
        const result = await axeViolations(page);
        found[screen] = result.serious;
        // axe really looked: a screen of this app passes dozens of its rules.
        expect(result.passed, screen).toBeGreaterThan(10);
        // Every screen has its level-one heading (the Chat screen's is for screen readers only).
        expect(
          result.minor.filter((v) => v.startsWith('page-has-heading-one')),
          screen,
        ).toEqual([]);
        if (result.minor.length) console.warn(`axe, ${screen} (${name}, ${theme}), minor or moderate:`, result.minor);
        expect(await scrollsSideways(page), `${screen} scrolls sideways`).toBe(false);
      };

      await page.goto(`${app.url}/`);
      await check('Chat', () => page.getByTestId('chat-input').waitFor());
      await page.getByTestId('chat-settings').click();
      await check('Chat settings', () => page.getByTestId('chat-system-prompt').waitFor());
      await page.keyboard.press('Escape');
      await page.goto(`${app.url}/models`);
      await check('Models', () =>
        page.getByTestId('storage-panel').and(page.locator('[data-measured="true"]')).waitFor(),
      );
      await page.goto(`${app.url}/rooms/global`);
      await check('Room', () => page.getByTestId('room-self').filter({ hasText: 'You are' }).waitFor());
      await page.goto(`${app.url}/rooms`);
      await check('Rooms', () => page.getByTestId('room-link').first().waitFor());
      await page.goto(`${app.url}/account`);
      await check('Account, signed out', () => page.getByTestId('account-submit').waitFor());
      await page.getByTestId('account-username').fill(`axe-${name}-${theme}`);
      await page.getByTestId('account-password').fill('correct horse battery');
      await page.getByTestId('account-submit').click();
      await check('Account, signed in', () => page.getByTestId('api-key-name').waitFor({ timeout: 15_000 }));
      await page.getByTestId('api-key-name').fill('axe');
      await page.getByTestId('api-key-create').click();
      await check('Account, a new API key', () => page.getByTestId('api-key-secret').waitFor({ timeout: 15_000 }));
      await page.goto(`${app.url}/rooms`);
      await check('Rooms, signed in', () => page.getByTestId('room-create').waitFor());
      await context.close();
      expect(found).toEqual(Object.fromEntries(Object.keys(found).map((screen) => [screen, []])));
    },
    120_000,
  );
});
