// The Hub's refusals reach the person as clear messages through models.status (docs/SECURITY.md, the download
// proxy): a gated repo, a missing repo, revision or file, and a rate limit with a long Retry-After.
import { describe, expect, it } from 'vitest';
import { type FakeHub, bufferContent } from '../scripts/fake-hub.ts';
import { useHubApp, writeCatalogue } from './support/hub-app.ts';

const fixture = useHubApp({ name: 'hub-refusals', username: 'refused', publish });

const entry = (id: string, repo: string, revision = 'main', files = [{ path: 'config.json' }]) => ({
  id,
  name: id,
  repo,
  revision,
  task: 'text-generation',
  dtype: { webgpu: 'q4', wasm: 'q4' },
  contextLength: 256,
  license: 'mit',
  files,
});

async function publish(hub: FakeHub, dir: string): Promise<string> {
  await hub.addRepo('mesh/gated', { 'config.json': bufferContent('{}') });
  hub.gate('mesh/gated', ['someone-else']);
  // The catalogue lists each repo once: one open repo per case.
  for (const name of ['revision', 'file', 'dtype', 'limited']) {
    await hub.addRepo(`mesh/open-${name}`, {
      'config.json': bufferContent('{}'),
      'tokenizer.json': bufferContent('{}'),
    });
  }
  return writeCatalogue(dir, [
    entry('gated', 'mesh/gated'),
    entry('no-repo', 'mesh/nowhere'),
    entry('no-revision', 'mesh/open-revision', 'v2'),
    entry('no-file', 'mesh/open-file', 'main', [{ path: 'tokenizer.json' }, { path: 'onnx/model_q4.onnx' }]),
    // Lists no files: derived as transformers.js picks them, and the repo has no q4 graph.
    { ...entry('no-dtype', 'mesh/open-dtype'), files: [] },
    entry('limited', 'mesh/open-limited'),
  ]);
}

async function failure(id: string) {
  await fixture.download({ id });
  const status = await fixture.app.inject(
    `/api/trpc/models.status?input=${encodeURIComponent(JSON.stringify({ id }))}`,
  );
  const body = status.json() as {
    result: { data: { phase: string; error: { code: string; message: string } | null } };
  };
  expect(body.result.data.phase).toBe('failed');
  return body.result.data.error;
}

describe("the Hub's refusals, as the person reads them", () => {
  it('a gated repo says to accept its conditions and set HF_TOKEN', async () => {
    expect(await failure('gated')).toEqual({
      code: 'GATED',
      message:
        "mesh/gated is gated: accept the model's conditions on its Hub page, then give this server that account's token as HF_TOKEN",
    });
  });

  it('a missing repo, revision or file is named', async () => {
    expect(await failure('no-repo')).toEqual({
      code: 'NOT_FOUND',
      message: 'The Hub has no repo mesh/nowhere (or it is private: set HF_TOKEN)',
    });
    expect(await failure('no-revision')).toEqual({
      code: 'NOT_FOUND',
      message: 'mesh/open-revision has no revision v2',
    });
    expect((await failure('no-file'))?.message).toMatch(
      /^onnx\/model_q4\.onnx is not in mesh\/open-file at [0-9a-f]{12}$/,
    );
    expect(await failure('no-dtype')).toEqual({
      code: 'NOT_FOUND',
      message: 'The repo has no onnx/model_q4.onnx (it has no onnx/model*.onnx graph)',
    });
  });

  it('a rate limit says when to try again', async () => {
    fixture.hub.rateLimit(3600);
    expect(await failure('limited')).toEqual({
      code: 'RATE_LIMITED',
      message: 'The Hub is rate-limiting this server; try again in 3600 s',
    });
  });
});
