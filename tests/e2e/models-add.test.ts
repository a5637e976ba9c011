// The Models screen's "Add a model by its repo id" field in headless Chromium (WASM, no GPU), against the fake Hub:
// a refused repo says which check failed; an accepted one shows its size per dtype, joins the catalogue, downloads
// only the dtype this device runs (the fake Hub is asked for no other graph), loads and answers.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, bufferContent } from '../../scripts/fake-hub.ts';
import { generateRandomModel } from '../../scripts/tiny-model/generate.ts';
import { useAppServer } from '../support/app-server.ts';

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
});
