// Mesh inference in headless Chromium: two pages in the global room. Ada loads the nano model and shares her
// compute; Bob has no model and asks on the mesh. Bob's answer streams from Ada over their data channel, the
// readout names Ada, and it equals the answer Ada's own device gives to the same prompt (greedy).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClient, launchChromium } from '../support/browser.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

let dir: string;
let server: ServerProcess;
let browser: Browser;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-e2e-mesh-'));
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

/** A guest page with a chosen display name, on the Rooms screen. */
async function guest(name: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  // The guest is made on a page of the origin that is not the app: the app would make its own guest meanwhile.
  await page.goto(`${server.url}/api/health`);
  const status = await page.evaluate(async (displayName) => {
    const response = await fetch('/api/trpc/auth.guest', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ displayName }) });
    return response.status;
  }, name);
  expect(status).toBe(200);
  await page.goto(`${server.url}/rooms`);
  return page;
}

/** Through the app's own links, so the room stays joined (a reload would leave it). */
async function open(page: Page, screen: 'Chat' | 'Models' | 'Rooms') {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: screen }).click();
}

const peerRow = (page: Page, name: string) => page.locator(`[data-testid="room-peer"][data-peer-name="${name}"]`);

/** Sends `prompt` on the chat screen with `route`, greedy; returns the answer's text and readout. */
async function ask(page: Page, route: string, prompt: string): Promise<{ text: string; readout: string }> {
  await page.getByTestId('chat-route').selectOption(route);
  await page.getByTestId('chat-temperature').fill('0');
  const before = await page.getByTestId('answer-readout').count();
  await page.getByTestId('chat-input').fill(prompt);
  await page.getByTestId('chat-send').click();
  await expect.poll(() => page.getByTestId('answer-readout').count(), { timeout: 60_000 }).toBe(before + 1);
  const answer = page.getByTestId('chat-message-assistant').last();
  const readout = (await answer.getByTestId('answer-readout').textContent()) ?? '';
  const whole = (await answer.textContent()) ?? '';
  return { text: whole.slice(0, whole.length - readout.length), readout };
}

describe('mesh inference in the browser', () => {
  it("streams a peer's answer from the page that shares the model, equal to that page's own greedy answer", async () => {
    const ada = await guest('Ada');
    const bob = await guest('Bob');

    // Ada loads the bundled model and shares it in the global room.
    await open(ada, 'Models');
    const card = ada.locator('[data-testid="model-card"][data-model-id="nano-shakespeare"]');
    await card.getByTestId('model-load').click();
    await expect.poll(() => card.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');
    await open(ada, 'Rooms');
    await ada.getByTestId('room-link').filter({ hasText: 'Global' }).click();
    await open(bob, 'Rooms');
    await bob.getByTestId('room-link').filter({ hasText: 'Global' }).click();
    await expect.poll(() => peerRow(ada, 'Bob').getByTestId('peer-state').getAttribute('data-state'), { timeout: 30_000 }).toBe('open');
    await ada.getByTestId('share-compute').check();
    await expect.poll(() => ada.getByTestId('self-serving').textContent()).toMatch(/^Sharing: 0 jobs served/);

    // Bob sees it over the data channel: WASM, sharing, with an RTT.
    await expect.poll(() => peerRow(bob, 'Ada').getByTestId('peer-sharing').textContent(), { timeout: 15_000 }).toBe('yes');
    expect(await peerRow(bob, 'Ada').getByTestId('peer-backend').textContent()).toBe('WASM');
    await expect.poll(() => peerRow(bob, 'Ada').getByTestId('peer-rtt').textContent(), { timeout: 15_000 }).toMatch(/^\d+\.\d ms$/);

    // Bob, without a model, asks on the mesh.
    await open(bob, 'Chat');
    const prompt = 'What says the king of the crown?';
    const remote = await ask(bob, 'mesh', prompt);
    expect(remote.readout).toMatch(/^on Ada · WASM · \d+\.\d tok\/s · \d+ ms RTT · TTFT \d+ ms$/);
    expect(remote.text.length).toBeGreaterThan(10);
    await open(ada, 'Rooms');
    await ada.getByTestId('room-link').filter({ hasText: 'Global' }).click();
    await expect.poll(() => ada.getByTestId('self-serving').textContent()).toMatch(/^Sharing: 1 jobs served/);

    // Ada asks her own device the same thing: the same words.
    await open(ada, 'Chat');
    const local = await ask(ada, 'device', prompt);
    expect(local.readout).toMatch(/on this device · WASM/);
    expect(remote.text).toBe(local.text);
  }, 180_000);
});
