// Mesh inference in headless Chromium with headless Node peers (werift) in the same room:
// - Ada shares the nano model, Bob has none and asks on the mesh: Bob's answer streams from Ada over their data
//   channel, the readout names Ada, and it equals the answer Ada's own device gives (greedy).
// - Failover: Ann serves Ben's answer, a headless peer Cy shares too; Ann's page closes after a few tokens. Ben's
//   answer completes on Cy, identical to an uninterrupted run with the same seed, and the job records a failover.
//   (Ann's page sends only five tokens of it: the test holds the rest back at her data channel, then closes her.)
// - Trust: a headless peer that corrupts its tokens (and lies about its speed) serves Ben; the spot check catches
//   it, it is excluded, and Ben's answer is corrected to the honest one.
// - Model choice: with the nano model shared most, a model chosen under chat-model goes to the one peer sharing it.
// The first prompt to a peer in a room comes after a notice (Bob's, tested below); the other pages accepted it before.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import { HeadlessPeer } from '../../src/peer/headless-peer.ts';
import { useAppServer } from '../support/app-server.ts';
import { publishModels } from '../support/model-fixtures.ts';
import { ROOT, downloadModel, signUpCookie } from '../support/server-process.ts';

// A second model in the catalogue, on a fake Hub, for the model-choice test.
const hub = new FakeHub();
const app = useAppServer({
  name: 'mesh',
  services: [hub],
  async env(dir) {
    const { manifestPath } = await publishModels(hub, dir, [
      { id: 'mesh-tiny', options: { layers: 1, hidden: 32, heads: 2, seed: 9, maxPositions: 256 } },
    ]);
    return { HF_ENDPOINT: hub.origin, MANIFEST_PATH: manifestPath };
  },
});
const headless: HeadlessPeer[] = [];
// Registered after the app server's, so run before it closes (vitest runs after-hooks as a stack).
afterAll(() => Promise.all(headless.map((peer) => peer.stop())));
// The room and a mesh answer go to docs/screenshots when SCREENSHOTS=1, at desktop and phone size (README uses them).
const screenshots = process.env.SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'screenshots') : null;
const PHONE = { width: 390, height: 844 };

/**
 * A guest page with a chosen display name, on the Rooms screen. `peerNotice: 'seen'`: the notice before the first
 * prompt to a peer in the global room was accepted before (remembered on the device), as for someone back in it.
 */
async function guest(name: string, options: { peerNotice?: 'seen' | 'new' } = {}): Promise<Page> {
  const page = await app.guest(name, { viewport: { width: 1280, height: 900 } });
  if (options.peerNotice !== 'new')
    await page.addInitScript(() => localStorage.setItem('mesh:peer-notice:global', 'accepted'));
  await page.goto(`${app.url}/rooms`);
  return page;
}

/** Through the app's own links, so the room stays joined (a reload would leave it). */
async function open(page: Page, screen: 'Chat' | 'Models' | 'Rooms') {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: screen }).click();
}

const peerRow = (page: Page, name: string) => page.locator(`[data-testid="room-peer"][data-peer-name="${name}"]`);

/** Sends `prompt` on the chat screen with `route` (greedy unless a seed is given); returns the answer and readout. */
async function ask(
  page: Page,
  route: string,
  prompt: string,
  sampled?: { temperature: string; seed: string },
  options: { notice?: 'accept' } = {},
): Promise<{ text: string; readout: string }> {
  await page.getByTestId('chat-route').selectOption(route);
  await page.getByTestId('chat-temperature').fill(sampled?.temperature ?? '0');
  await page.getByTestId('chat-seed').fill(sampled?.seed ?? '');
  const before = await page.getByTestId('answer-readout').count();
  await page.getByTestId('chat-input').fill(prompt);
  await page.getByTestId('chat-send').click();
  if (options.notice === 'accept') await page.getByTestId('mesh-notice-accept').click();
  await expect.poll(() => page.getByTestId('answer-readout').count(), { timeout: 60_000 }).toBe(before + 1);
  return lastAnswer(page);
}

async function lastAnswer(page: Page): Promise<{ text: string; readout: string }> {
  const answer = page.getByTestId('chat-message-assistant').last();
  const readout = (await answer.getByTestId('answer-readout').textContent()) ?? '';
  const whole = (await answer.textContent()) ?? '';
  return { text: whole.slice(0, whole.length - readout.length), readout };
}

/** A new conversation, so the next answer has no history before it. */
async function newChat(page: Page) {
  await page.getByRole('button', { name: 'New chat' }).click();
  await expect.poll(() => page.getByTestId('chat-message-assistant').count()).toBe(0);
}

async function loadNano(page: Page) {
  await open(page, 'Models');
  const card = page.locator('[data-testid="model-card"][data-model-id="nano-shakespeare"]');
  await card.getByTestId('model-load').click();
  await expect.poll(() => card.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');
}

async function enterGlobal(page: Page) {
  await open(page, 'Rooms');
  await page.getByTestId('room-link').filter({ hasText: 'Global' }).click();
  await expect.poll(() => page.getByTestId('room-self').textContent(), { timeout: 15_000 }).toMatch(/^You are /);
}

async function startHeadless(
  name: string,
  options: { corruptTokens?: boolean; model?: string } = {},
): Promise<HeadlessPeer> {
  const peer = new HeadlessPeer({
    server: app.url,
    room: 'global',
    model: 'nano-shakespeare',
    name,
    cacheDir: path.join(app.dir, 'peer-cache'),
    ...options,
  });
  headless.push(peer);
  await peer.start();
  return peer;
}

/** The signed-in person's mesh jobs, newest first, as the server recorded them. */
function jobsOf(page: Page) {
  return page.evaluate(async () => {
    const response = await fetch('/api/trpc/jobs.list');
    return (
      (await response.json()) as {
        result: {
          data: {
            failoverCount: number;
            outcome: string;
            checkResult: string | null;
            server: { displayName: string } | null;
          }[];
        };
      }
    ).result.data;
  });
}

/**
 * Lets `server`'s page send only the first `tokens` tokens of any answer (what it sends later about jobs is dropped
 * at its data channels), and closes that page as soon as the answer starts to appear on `asker`'s chat screen:
 * the answer is cut after exactly that many tokens, however fast the page generates and however slowly it closes.
 */
async function cutAfterTokens(asker: Page, server: Page, tokens: number): Promise<() => Promise<void>> {
  await server.evaluate((allowed) => {
    const send = RTCDataChannel.prototype.send;
    let sent = 0;
    RTCDataChannel.prototype.send = function (
      this: RTCDataChannel,
      data: string | Blob | ArrayBuffer | ArrayBufferView,
    ) {
      if (typeof data === 'string' && /"type":"job:(token|done|error)"/.test(data)) {
        if (!data.includes('"type":"job:token"') || sent >= allowed) return;
        sent++;
      }
      (send as (this: RTCDataChannel, payload: typeof data) => void).call(this, data);
    };
  }, tokens);
  let closed: Promise<void> | null = null;
  await asker.exposeFunction('answerStarted', () => {
    closed ??= server.context().close();
  });
  await asker.evaluate(() => {
    const seen = { done: false };
    new MutationObserver(() => {
      const answers = document.querySelectorAll('[data-testid="chat-message-assistant"]');
      if (!seen.done && (answers[answers.length - 1]?.textContent?.length ?? 0) > 0) {
        seen.done = true;
        void (window as unknown as { answerStarted: () => Promise<void> }).answerStarted();
      }
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  });
  return async () => {
    await closed;
  };
}

const SAMPLED = { temperature: '0.8', seed: '7' };
const LONG_PROMPT = 'What says the king of the crown?';

describe('mesh inference in the browser', () => {
  it("streams a peer's answer from the page that shares the model, equal to that page's own greedy answer", async () => {
    const ada = await guest('Ada');
    const bob = await guest('Bob', { peerNotice: 'new' });

    // Ada loads the bundled model and shares it in the global room.
    await loadNano(ada);
    await enterGlobal(ada);
    await enterGlobal(bob);
    await expect
      .poll(() => peerRow(ada, 'Bob').getByTestId('peer-state').getAttribute('data-state'), { timeout: 30_000 })
      .toBe('open');
    await ada.getByTestId('share-compute').check();
    await expect.poll(() => ada.getByTestId('self-serving').textContent()).toMatch(/^Sharing: 0 jobs served/);

    // Bob sees it over the data channel: WASM, sharing, with an RTT.
    await expect
      .poll(() => peerRow(bob, 'Ada').getByTestId('peer-sharing').textContent(), { timeout: 15_000 })
      .toBe('yes');
    expect(await peerRow(bob, 'Ada').getByTestId('peer-backend').textContent()).toBe('WASM');
    await expect
      .poll(() => peerRow(bob, 'Ada').getByTestId('peer-rtt').textContent(), { timeout: 15_000 })
      .toMatch(/^\d+\.\d ms$/);

    // Bob, without a model, asks on the mesh. First, a notice: the peer answering reads the prompt. Cancel sends
    // nothing and keeps the draft; Continue sends it, and is remembered for the room.
    await open(bob, 'Chat');
    const prompt = 'What says the king of the crown?';
    await bob.getByTestId('chat-route').selectOption('mesh');
    await bob.getByTestId('chat-input').fill(prompt);
    await bob.getByTestId('chat-send').click();
    const notice = bob.getByTestId('mesh-notice');
    await notice.waitFor();
    expect(await notice.textContent()).toMatch(/A peer in global will read this.*receives your prompt/);
    await bob.getByTestId('mesh-notice-cancel').click();
    await notice.waitFor({ state: 'detached' });
    expect(await bob.getByTestId('chat-input').inputValue()).toBe(prompt);
    expect(await bob.getByTestId('chat-message-user').count()).toBe(0);
    expect(await ada.getByTestId('self-serving').textContent()).toMatch(/^Sharing: 0 jobs served/);
    const remote = await ask(bob, 'mesh', prompt, undefined, { notice: 'accept' });
    expect(await bob.evaluate(() => localStorage.getItem('mesh:peer-notice:global'))).toBe('accepted');
    expect(remote.readout).toMatch(/^on Ada · WASM · \d+\.\d tok\/s · \d+ ms RTT · TTFT \d+ ms$/);
    expect(remote.text.length).toBeGreaterThan(10);
    await enterGlobal(ada);
    await expect.poll(() => ada.getByTestId('self-serving').textContent()).toMatch(/^Sharing: 1 job served/);
    // The server recorded it: the room's stats count it, with Ada as its server.
    await expect
      .poll(() => ada.getByTestId('room-stats').textContent(), { timeout: 15_000 })
      .toMatch(/^1 answer served in this room · \d+ tokens · 0 failovers · 0 failed spot checks · most by Ada \(1\)$/);

    // Ada asks her own device the same thing: the same words.
    await open(ada, 'Chat');
    const local = await ask(ada, 'device', prompt);
    expect(local.readout).toMatch(/on this device · WASM/);
    expect(remote.text).toBe(local.text);

    // Auto (the notice is remembered for the room, so none comes): Bob's answer starts on Ada, Ada's page closes, nobody else shares: the cloud (the stub) answers instead.
    await open(bob, 'Chat');
    await newChat(bob);
    const closed = await cutAfterTokens(bob, ada, 5);
    const fallback = await ask(bob, 'auto', LONG_PROMPT, SAMPLED);
    await closed();
    expect(fallback.readout).toMatch(
      /^Stub .* · the mesh could not answer: No peer in this room shares nano-shakespeare to finish this answer \(Ada: left the room\)$/,
    );
    await bob.context().close();
  }, 180_000);

  it('finishes an answer on another peer when the serving page closes mid-answer, as if nothing happened', async () => {
    const ann = await guest('Ann');
    const ben = await guest('Ben');
    // Ann measures her speed on a local answer first, so schedulers rank her above the unmeasured headless peer.
    await loadNano(ann);
    await open(ann, 'Chat');
    await ask(ann, 'device', 'Good morrow');
    await enterGlobal(ann);
    await ann.getByTestId('share-compute').check();
    const cy = await startHeadless('Cy');
    await enterGlobal(ben);
    for (const name of ['Ann', 'Cy']) {
      await expect
        .poll(() => peerRow(ben, name).getByTestId('peer-sharing').textContent(), { timeout: 30_000 })
        .toBe('yes');
    }

    // Ann's page closes as soon as her first tokens reach Ben.
    await open(ben, 'Chat');
    const closed = await cutAfterTokens(ben, ann, 5);
    const resumed = await ask(ben, 'mesh', LONG_PROMPT, SAMPLED);
    await closed();
    expect(resumed.readout).toMatch(/^on Cy · CPU · .* · continued after 1 peer left \(Ann → Cy\)$/);
    if (screenshots) {
      await mkdir(screenshots, { recursive: true });
      await ben.screenshot({ path: path.join(screenshots, 'mesh-chat.png') });
      await enterGlobal(ben);
      await ben.screenshot({ path: path.join(screenshots, 'room.png'), fullPage: true });
      // The same two screens on a phone (390x844), then back to the desktop size the test goes on with.
      const desktop = ben.viewportSize();
      await ben.setViewportSize(PHONE);
      await ben.evaluate(() => window.scrollTo(0, 0));
      await ben.screenshot({ path: path.join(screenshots, 'room-phone.png') });
      await open(ben, 'Chat');
      await ben.screenshot({ path: path.join(screenshots, 'mesh-chat-phone.png') });
      if (desktop) await ben.setViewportSize(desktop);
    }
    expect(cy.status().jobsServed).toBe(1);

    // The same question with the same seed, uninterrupted (only Cy is left): the same answer, word for word.
    await newChat(ben);
    const whole = await ask(ben, 'mesh', LONG_PROMPT, SAMPLED);
    expect(whole.readout).toMatch(/^on Cy · CPU/);
    expect(resumed.text.length).toBeGreaterThan(100);
    expect(resumed.text).toBe(whole.text);

    // The server recorded both, the first with one failover and Cy as its last server.
    await expect
      .poll(async () => (await jobsOf(ben)).map((job) => [job.outcome, job.failoverCount, job.server?.displayName]))
      .toEqual([
        ['COMPLETED', 0, 'Cy'],
        ['COMPLETED', 1, 'Cy'],
      ]);
  }, 240_000);

  it('catches a peer that returns wrong tokens, excludes it, and corrects the answer', async () => {
    // Cy (honest, from the failover test) is still here.
    const eve = await startHeadless('Eve', { corruptTokens: true });
    await startHeadless('Dee');
    const ben = await guest('Ben2');
    await enterGlobal(ben);
    for (const name of ['Eve', 'Dee', 'Cy']) {
      await expect
        .poll(() => peerRow(ben, name).getByTestId('peer-sharing').textContent(), { timeout: 30_000 })
        .toBe('yes');
    }
    await ben.getByTestId('spot-check').selectOption('1');
    await open(ben, 'Chat');
    const served = await ask(ben, 'mesh', LONG_PROMPT, SAMPLED);
    expect(served.readout).toMatch(/^on Eve · CPU/);
    // The check re-runs the job on two honest peers; the answer on screen is then replaced.
    await expect
      .poll(async () => (await lastAnswer(ben)).readout, { timeout: 60_000 })
      .toMatch(/corrected by a spot check; Eve excluded/);
    const corrected = await lastAnswer(ben);
    expect(corrected.text).not.toBe(served.text);
    expect(eve.status().jobsServed).toBe(1);

    // The next answer comes from an honest peer, and is the corrected one.
    await newChat(ben);
    const honest = await ask(ben, 'mesh', LONG_PROMPT, SAMPLED);
    expect(honest.readout).not.toMatch(/on Eve/);
    expect(honest.text).toBe(corrected.text);
    await enterGlobal(ben);
    await expect.poll(() => peerRow(ben, 'Eve').getAttribute('data-excluded')).toBe('true');
    await expect.poll(async () => (await jobsOf(ben)).at(-1)?.checkResult).toBe('MISMATCH');
  }, 240_000);

  it('sends the job for the model chosen under chat-model to a peer sharing it, not to the most shared one', async () => {
    // Nia and Nox share the nano model (so do the earlier tests' peers still here); Tia alone shares mesh-tiny.
    await downloadModel(app.url, await signUpCookie(app.url, 'tia-keeper'), 'mesh-tiny');
    await Promise.all([startHeadless('Nia'), startHeadless('Nox')]);
    const tia = await startHeadless('Tia', { model: 'mesh-tiny' });
    const rex = await guest('Rex');
    await enterGlobal(rex);
    for (const name of ['Nia', 'Nox', 'Tia']) {
      await expect
        .poll(() => peerRow(rex, name).getByTestId('peer-sharing').textContent(), { timeout: 30_000 })
        .toBe('yes');
    }
    await open(rex, 'Chat');
    const route = rex.getByTestId('chat-route');
    await route.selectOption('mesh');
    // "Answer with" names the most shared model; the settings list every shared model with who shares it.
    expect(await route.locator('option[value="mesh"]').textContent()).toMatch(/^nano-shakespeare on a peer in global/);
    const choose = async (value: string) => {
      await rex.getByTestId('chat-settings').click();
      const select = rex.getByTestId('chat-model');
      await expect
        .poll(() => select.locator('option').allTextContents())
        .toContainEqual(expect.stringMatching(/^mesh-tiny · Tia/));
      await select.selectOption(value);
      await rex.keyboard.press('Escape');
    };
    await choose('mesh-tiny');
    const chosen = await ask(rex, 'mesh', 'Good morrow');
    expect(chosen.readout).toMatch(/^on Tia · /);
    expect(tia.status().jobsServed).toBe(1);

    // Back to the default: the most shared model, which Tia does not have.
    await newChat(rex);
    await choose('');
    const most = await ask(rex, 'mesh', 'Good morrow');
    expect(most.readout).not.toMatch(/on Tia/);
    expect(tia.status().jobsServed).toBe(1);
    await rex.context().close();
  }, 240_000);
});
