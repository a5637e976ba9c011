// The Models screen's "Add a model by its repo id" field in headless Chromium (WASM, no GPU), against the fake Hub:
// a refused repo says which check failed; an accepted one shows its size per dtype, joins the catalogue, downloads
// only the dtype this device runs (the fake Hub is asked for no other graph), loads and answers; and the page shares
// it on the mesh: another account's /v1 request runs on the page (the server's werift member of the global room asks
// it), with the greedy answer the engine gives in Node.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent } from '../../scripts/fake-hub.ts';
import { generateRandomModel } from '../../scripts/tiny-model/generate.ts';
import { useAppServer } from '../support/app-server.ts';
import { answerOnServerCopy, serverEntry } from '../support/model-fixtures.ts';
import { signUpCookie } from '../support/server-process.ts';

const hub = new FakeHub();
const app = useAppServer({
  name: 'models-add',
  services: [hub],
  async env(dir) {
    const local = path.join(dir, 'model');
    await generateRandomModel(local, { layers: 1, hidden: 32, heads: 2, seed: 3, maxPositions: 256 });
    const read = async (name: string) => bufferContent(await readFile(path.join(local, name)));
    const graph = await read('onnx/model.onnx');
    await hub.addRepo('mesh/added-chat', {
      'config.json': await read('config.json'),
      'generation_config.json': await read('generation_config.json'),
      'tokenizer.json': await read('tokenizer.json'),
      'tokenizer_config.json': await read('tokenizer_config.json'),
      'README.md': bufferContent('---\nlicense: apache-2.0\n---\n# Added chat\n'),
      // Two dtypes (the same float graph under both names: only which file is fetched matters here). WASM runs q4.
      'onnx/model.onnx': graph,
      'onnx/model_q4.onnx': graph,
    });
    await hub.addRepo('mesh/an-encoder', {
      'config.json': bufferContent('{"model_type":"bert"}'),
      'README.md': bufferContent('---\nlicense: mit\n---\n'),
    });
    return { HF_ENDPOINT: hub.origin };
  },
});
let page: Page;

beforeAll(async () => {
  page = await app.newPage();
});

const card = (id: string) => page.locator(`[data-testid="model-card"][data-model-id="${id}"]`);

describe('adding a model by its repo id on the Models screen', () => {
  it('refuses naming the check, then adds, downloads only its WASM dtype, and loads it', async () => {
    await page.goto(`${app.url}/account`);
    await page.getByTestId('account-username').fill('adder');
    await page.getByTestId('account-password').fill('correct horse battery');
    await page.getByTestId('account-submit').click();
    await expect.poll(() => page.getByTestId('account-user').textContent(), { timeout: 15_000 }).toMatch(/adder/);
    await page.getByRole('link', { name: 'Models' }).click();

    await page.getByTestId('model-add-input').fill('mesh/an-encoder');
    await page.getByTestId('model-add-submit').click();
    const error = page.getByTestId('model-add-error');
    await expect.poll(() => error.getAttribute('data-check'), { timeout: 15_000 }).toBe('architecture');
    expect(await error.textContent()).toMatch(/^Architecture: mesh\/an-encoder is a bert: not an architecture/);

    // Pasted as a Hub URL: the repo is read from it (the server still asks HF_ENDPOINT, the fake Hub).
    await page.getByTestId('model-add-input').fill('https://huggingface.co/mesh/added-chat');
    await page.getByTestId('model-add-submit').click();
    const result = page.getByTestId('model-add-result');
    await expect
      .poll(() => result.textContent(), { timeout: 15_000 })
      .toMatch(/^Added added-chat \(apache-2\.0\): fp32 .+ · q4 /);
    expect(await error.count()).toBe(0);
    const added = card('mesh--added-chat');
    await expect.poll(() => added.getByTestId('model-where').textContent(), { timeout: 15_000 }).toBe('on the Hub');

    hub.reset();
    await added.getByTestId('model-download').click();
    await expect
      .poll(() => added.getByTestId('model-where').textContent(), { timeout: 60_000 })
      .toBe('cached on the server · on this device');
    const graphs = hub.requests
      .filter((r) => /\/resolve\/[^/]+\/onnx\//.test(r.path))
      .map((r) => r.path.replace(/^.*\/onnx\//, 'onnx/'));
    expect(graphs).toEqual(['onnx/model_q4.onnx']);

    await added.getByTestId('model-load').click();
    await expect.poll(() => added.getByTestId('backend-badge').textContent(), { timeout: 60_000 }).toBe('WASM');
  }, 180_000);

  it('is shared on the mesh from the page: another account’s /v1 request runs on it', async () => {
    // Through the app's own links, so the loaded model stays loaded.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rooms' }).click();
    await page.getByTestId('room-link').filter({ hasText: 'Global' }).click();
    await expect.poll(() => page.getByTestId('room-self').textContent(), { timeout: 15_000 }).toMatch(/^You are /);
    await page.getByTestId('share-compute').check();
    await expect.poll(() => page.getByTestId('self-serving').textContent()).toMatch(/^Sharing: 0 jobs served/);

    // Another account, which never added the model, asks it in the global room where the page shares it.
    const asker = await signUpCookie(app.url, 'asker');
    const created = await fetch(`${app.url}/api/trpc/apiKey.create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: asker },
      body: JSON.stringify({ name: 'mesh' }),
    });
    const { key } = ((await created.json()) as { result: { data: { key: string } } }).result.data;
    const messages = [{ role: 'user' as const, content: 'hello there' }];
    const response = await fetch(`${app.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'mesh--added-chat', messages, temperature: 0, top_p: 1, seed: 3, max_tokens: 8 }),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const answer = (await response.json()) as {
      choices: { message: { content: string } }[];
      usage: { completion_tokens: number };
    };
    await expect.poll(() => page.getByTestId('self-serving').textContent()).toMatch(/^Sharing: 1 job served/);

    // The same files loaded in Node through the proxy (the adder's catalogue lists them): the same greedy tokens.
    const session = (await page.context().cookies(app.url)).find((c) => c.name === 'mesh_session');
    const cookie = `mesh_session=${session?.value ?? ''}`;
    const entry = await serverEntry(app.url, 'mesh--added-chat', cookie);
    const alone = await answerOnServerCopy(
      app.url,
      entry,
      path.join(app.dir, 'node'),
      messages,
      { temperature: 0, topP: 1, maxNewTokens: 8 },
      cookie,
    );
    expect(answer.usage.completion_tokens).toBe(alone.tokenIds.length);
    const text = answer.choices[0]?.message.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    // A stream holds back half a character (U+FFFD) at the end.
    expect(alone.text.startsWith(text)).toBe(true);
    expect(alone.text.slice(text.length)).toMatch(/^\uFFFD?$/);
  }, 90_000);
});
