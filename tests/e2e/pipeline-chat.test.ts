// The chat asks a model that no peer of the room shares whole but whose layers two headless peers host as stages
// (`--stage 0-2` and `--stage 2-4` of a generated 4-layer model): the room and the Models screen mark the model
// "runs across 2 peers in this room", the chat's mesh route offers it across those peers, and the answer, run as a
// pipeline job by the page (RoomPipeline over the browser's data channels to werift, the tokenizer in the app's
// inference worker), equals the whole model's greedy answer from the inference engine in Node, token for token;
// the readout names each stage's peer. Stop ends an answer whose tokens stopped coming, with what came so far
// (docs/pipeline.md, "Asking from the chat").
import path from 'node:path';
import { AutoTokenizer, type PreTrainedTokenizer } from '@huggingface/transformers';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import { HeadlessPeer } from '../../src/peer/headless-peer.ts';
import type { LayerRange } from '../../src/shared/pipeline/pipe-protocol.ts';
import { InferenceEngine } from '../../src/worker/engine.ts';
import { useAppServer } from '../support/app-server.ts';
import { downloadModel, signUpCookie } from '../support/server-process.ts';
import { type StagedModel, publishStagedModel } from '../support/stage-fixtures.ts';

const ID = 'staged-chat';
const OPTIONS = { layers: 4, hidden: 64, heads: 4, seed: 23, vocab: 400, maxPositions: 160 };
const PROMPT = 'Tell me a long story about the sea and the ships upon it.';
const MAX_TOKENS = 24;

const hub = new FakeHub();
let staged: StagedModel;
const app = useAppServer({
  name: 'pipeline-chat',
  services: [hub],
  async env(dir) {
    staged = await publishStagedModel(hub, dir, ID, OPTIONS, [2]);
    return { HF_ENDPOINT: hub.origin, MANIFEST_PATH: staged.manifestPath };
  },
});
const peers: HeadlessPeer[] = [];
// Registered after the app server's, so run before it closes (vitest runs after-hooks as a stack).
afterAll(() => Promise.all(peers.map((peer) => peer.stop())));

let expected: { tokenIds: number[]; text: string };
let tokenizer: PreTrainedTokenizer;
/** The prompt's length in tokens, the chat template applied. */
let promptTokens: number;

beforeAll(async () => {
  // The server keeps the model pinned to a commit (the catalogue's cachedRevision): the tokenizer comes from there.
  await downloadModel(app.url, await signUpCookie(app.url, 'stage-keeper'), ID);
  const engine = new InferenceEngine({ modelHost: `${app.url}/models/`, cacheDir: path.join(app.dir, 'node-cache') });
  await engine.load(staged.model, 'auto', () => {});
  const result = await engine.generate(
    [{ role: 'user', content: PROMPT }],
    { temperature: 0, topP: 1, maxNewTokens: MAX_TOKENS },
    () => {},
  );
  await engine.unload();
  expected = { tokenIds: result.tokenIds, text: result.text };
  tokenizer = await AutoTokenizer.from_pretrained(staged.model.repo, { revision: staged.model.revision });
  promptTokens = result.promptTokens;
  for (const [name, stage] of [
    ['Stage A', [0, 2]],
    ['Stage B', [2, 4]],
  ] as [string, LayerRange][]) {
    const peer = new HeadlessPeer({
      server: app.url,
      room: 'global',
      name,
      cacheDir: path.join(app.dir, `peer-${name}`),
      threads: 1,
      model: ID,
      stage,
      stageDir: path.join(app.dir, ID),
    });
    peers.push(peer);
    await peer.start();
  }
}, 300_000);

/** Through the app's own links, so the room stays joined (a reload would leave it). */
async function open(page: Page, screen: 'Chat' | 'Models' | 'Rooms') {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: screen }).click();
}

/** The last answer as kept on the device (its text before markdown, and its record). */
function lastKept(page: Page) {
  return page.evaluate(
    () =>
      new Promise<{ content: string; readout?: string; record?: { tokensOut?: number; route?: string } }>(
        (resolve, reject) => {
          const request = indexedDB.open('mesh-nanollm');
          request.onerror = () => reject(new Error('no database'));
          request.onsuccess = () => {
            const all = request.result.transaction('conversations').objectStore('conversations').getAll();
            all.onsuccess = () => {
              type Kept = { updatedAt: number; messages: { role: string; content: string }[] };
              const latest = (all.result as Kept[]).sort((a, b) => b.updatedAt - a.updatedAt)[0];
              resolve(latest?.messages.findLast((m) => m.role === 'assistant') as never);
            };
          };
        },
      ),
  );
}

async function send(page: Page, prompt: string) {
  await page.getByTestId('chat-input').fill(prompt);
  await page.getByTestId('chat-send').click();
}

describe('the chat runs a model across the stage peers of its room', () => {
  let page: Page;

  it('marks the model in the room and on the Models screen, and offers it on the mesh route', async () => {
    page = await app.guest('Requester', { viewport: { width: 1280, height: 900 } });
    await page.addInitScript(() => localStorage.setItem('mesh:peer-notice:global', 'accepted'));
    // What the page asks of its inference worker, by message type (the answer's text: docs/pipeline.md).
    await page.addInitScript(() => {
      const asked: Record<string, number> = {};
      (globalThis as unknown as { workerAsked: Record<string, number> }).workerAsked = asked;
      const post = Worker.prototype.postMessage;
      Worker.prototype.postMessage = function (this: Worker, message: unknown, ...rest: never[]) {
        const type = (message as { type?: unknown } | null)?.type;
        if (typeof type === 'string') asked[type] = (asked[type] ?? 0) + 1;
        return (post as (this: Worker, ...args: unknown[]) => void).call(this, message, ...rest);
      };
    });
    await page.goto(`${app.url}/rooms`);
    await page.getByTestId('room-link').filter({ hasText: 'Global' }).click();
    await expect.poll(() => page.getByTestId('room-self').textContent(), { timeout: 15_000 }).toMatch(/^You are /);

    // The room names the model and each stage's peer.
    await expect
      .poll(() => page.locator(`[data-testid="room-pipeline"][data-model-id="${ID}"]`).textContent(), {
        timeout: 90_000,
      })
      .toBe(
        `Generated ${ID} with stages runs across 2 peers in this room (Stage A (layers 0–2) → Stage B (layers 2–4))`,
      );

    await open(page, 'Models');
    const card = page.locator(`[data-testid="model-card"][data-model-id="${ID}"]`);
    // The peers' hellos and frame channels come over their links.
    await expect
      .poll(() => card.getByTestId('model-pipeline').textContent(), { timeout: 90_000 })
      .toBe('runs across 2 peers in this room');
    // Models no peer hosts are not marked.
    await expect.poll(() => page.locator('[data-testid="model-card"]').getByTestId('model-pipeline').count()).toBe(1);

    await open(page, 'Chat');
    const route = page.getByTestId('chat-route');
    await expect.poll(() => route.locator('option[value="mesh"]').textContent()).toBe(`${ID} across 2 peers in global`);
    await route.selectOption('mesh');
    await expect
      .poll(() => page.getByTestId('chat-pipeline').textContent())
      .toBe(`${ID} across 2 peers: Stage A (layers 0–2) → Stage B (layers 2–4)`);
  }, 120_000);

  it("streams the pipeline's answer: the whole model's greedy tokens, with each stage's peer in the readout", async () => {
    expect(expected.tokenIds.length).toBeGreaterThan(10);
    await page.getByTestId('chat-temperature').fill('0');
    await page.getByTestId('chat-settings').click();
    await page.getByTestId('chat-max-tokens').fill(String(MAX_TOKENS));
    await page.keyboard.press('Escape');
    const asked = () =>
      page.evaluate(() => ({ ...(globalThis as unknown as { workerAsked: Record<string, number> }).workerAsked }));
    const before = await asked();
    await send(page, PROMPT);
    const answer = page.getByTestId('chat-message-assistant').last();
    await expect.poll(() => answer.getByTestId('answer-readout').count(), { timeout: 90_000 }).toBe(1);
    // The text came as the tokens did, a few ids decoded in the worker each time: the whole answer was decoded once,
    // at its end, not once a token.
    const after = await asked();
    const count = (type: string) => (after[type] ?? 0) - (before[type] ?? 0);
    expect(count('stage-detokenize')).toBe(1);
    expect(count('stage-text-deltas')).toBeGreaterThan(1);
    expect(count('stage-text-deltas')).toBeLessThanOrEqual(expected.tokenIds.length + 1);
    const readout = (await answer.getByTestId('answer-readout').textContent()) ?? '';
    expect(readout).toMatch(
      new RegExp(`^Generated ${ID} with stages across 2 peers: Stage A \\(layers 0–2\\) → Stage B \\(layers 2–4\\) · `),
    );
    expect(readout).not.toMatch(/stopped/);
    const kept = await lastKept(page);
    expect(kept.content).toBe(expected.text);
    expect(kept.record).toMatchObject({ route: 'MESH', tokensOut: expected.tokenIds.length });
    // The same tokens: their text, and the tokenizer's text of the engine's ids.
    expect(kept.content).toBe(tokenizer.decode(expected.tokenIds, { skip_special_tokens: true }));
  }, 120_000);

  it('stops an answer whose tokens stopped coming, keeping what came', async () => {
    // The page's frames into the first stage stop after the prompt and three answer tokens (a frame's position is
    // at byte 4: docs/pipeline.md, "Frames"): four tokens come, then the answer waits for one that never comes.
    await page.evaluate((held) => {
      const send = RTCDataChannel.prototype.send;
      const state = globalThis as unknown as { restoreSend: () => void; held: boolean };
      state.held = false;
      state.restoreSend = () => (RTCDataChannel.prototype.send = send);
      RTCDataChannel.prototype.send = function (this: RTCDataChannel, data: never) {
        const bytes = data as Uint8Array;
        if (this.label === 'pipeline-frames' && bytes.byteLength >= 8) {
          const position = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
          if (position >= held) {
            state.held = true;
            return;
          }
        }
        (send as (this: RTCDataChannel, payload: unknown) => void).call(this, data);
      };
    }, promptTokens + 3);
    await page.getByRole('button', { name: 'New chat' }).click();
    await send(page, PROMPT);
    const answer = page.getByTestId('chat-message-assistant').last();
    await expect
      .poll(() => page.evaluate(() => (globalThis as unknown as { held: boolean }).held), { timeout: 60_000 })
      .toBe(true);
    await expect.poll(() => answer.textContent()).not.toBe('');
    await page.getByTestId('chat-stop').click();
    await expect.poll(() => answer.getByTestId('answer-readout').count(), { timeout: 15_000 }).toBe(1);
    expect(await answer.getByTestId('answer-readout').textContent()).toMatch(/ · stopped$/);
    const kept = await lastKept(page);
    expect(kept.record?.tokensOut).toBe(4);
    expect(expected.text.startsWith(kept.content)).toBe(true);

    // The stages let the stopped job go: the next answer runs on them again, whole.
    await page.evaluate(() => (globalThis as unknown as { restoreSend: () => void }).restoreSend());
    await page.getByRole('button', { name: 'New chat' }).click();
    await send(page, PROMPT);
    const next = page.getByTestId('chat-message-assistant').last();
    await expect.poll(() => next.getByTestId('answer-readout').count(), { timeout: 60_000 }).toBe(1);
    expect((await lastKept(page)).content).toBe(expected.text);
  }, 120_000);
});
