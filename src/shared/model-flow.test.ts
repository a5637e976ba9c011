import { describe, expect, it } from 'vitest';
import {
  type ServerApi,
  type ServerDownload,
  enterRoom,
  findCatalogueModel,
  prepareOnServer,
  serverCopy,
} from './model-flow.ts';
import type { CatalogueEntry } from './schemas/models.ts';
import { sessionCookieHeader, sessionFromSetCookie } from './session-cookie.ts';

const REVISION = 'a'.repeat(40);

const hubEntry = {
  id: 'smol',
  name: 'Smol',
  repo: 'org/smol',
  revision: 'main',
  bundled: false,
  cachedRevision: null,
  files: [],
  downloads: [],
  totalSize: null,
  dtype: { webgpu: 'q4', wasm: 'q8' },
  contextLength: 2048,
} as unknown as CatalogueEntry;

const status = (patch: Partial<ServerDownload>): ServerDownload => ({
  revision: null,
  phase: 'downloading',
  bytesDone: 0,
  bytesTotal: 100,
  speed: 0,
  files: [],
  error: null,
  ...patch,
});

/** A server whose download goes through `statuses`, recording what it was asked. */
function scriptedServer(kind: 'GUEST' | 'ACCOUNT', statuses: ServerDownload[]) {
  const asked: string[] = [];
  const api: ServerApi = {
    me: async () => ({ kind }),
    requestDownload: async (id, dtype) => void asked.push(`download ${id} ${dtype ?? '*'}`),
    downloadStatus: async () => statuses.shift() ?? null,
    joinRoom: async (room, invite) => void asked.push(`join ${room} ${invite ?? '-'}`),
    iceServers: async () => [],
  };
  return { api, asked };
}

describe('prepareOnServer', () => {
  it('stops waiting for the server as soon as its signal aborts, with the reason given', async () => {
    const { api } = scriptedServer(
      'ACCOUNT',
      Array.from({ length: 1000 }, () => status({ bytesDone: 10 })),
    );
    const controller = new AbortController();
    let polls = 0;
    const waiting = prepareOnServer(api, hubEntry, {
      dtype: 'q8',
      accountHint: 'sign up',
      pollMs: 60_000,
      signal: controller.signal,
      onProgress: () => polls++,
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = Date.now();
    controller.abort(new Error('cancelled by the person'));
    await expect(waiting).rejects.toThrow('cancelled by the person');
    // Not after the next poll, a minute later: at once.
    expect(Date.now() - started).toBeLessThan(1000);
    expect(polls).toBe(1);
  });

  it('follows the server download to its pinned files, reporting each status', async () => {
    const { api, asked } = scriptedServer('ACCOUNT', [
      status({ bytesDone: 40 }),
      status({
        phase: 'ready',
        revision: REVISION,
        bytesDone: 100,
        files: [{ path: 'onnx/model.onnx', size: 100, bytesDone: 100 }],
      }),
    ]);
    const seen: number[] = [];
    const pinned = await prepareOnServer(api, hubEntry, {
      dtype: 'q8',
      accountHint: 'sign up',
      pollMs: 1,
      onProgress: (s) => seen.push(s.bytesDone),
    });
    expect(pinned).toEqual({ revision: REVISION, files: ['onnx/model.onnx'], bytes: 100 });
    expect(seen).toEqual([40]);
    expect(asked).toEqual(['download smol q8']);
  });

  it('tells a guest what to do instead of asking the server', async () => {
    const { api, asked } = scriptedServer('GUEST', []);
    await expect(prepareOnServer(api, hubEntry, { dtype: 'q8', accountHint: 'pass --token' })).rejects.toThrow(
      'The server has not downloaded Smol yet, and asking it to needs an account: pass --token',
    );
    expect(asked).toEqual([]);
  });

  it("passes on the server's reason when its download fails", async () => {
    const { api } = scriptedServer('ACCOUNT', [
      status({ phase: 'failed', error: { code: 'GATED', message: 'the repo is gated' } }),
    ]);
    await expect(prepareOnServer(api, hubEntry, { dtype: 'q8', accountHint: '', pollMs: 1 })).rejects.toThrow(
      'The server could not fetch Smol: the repo is gated',
    );
  });

  it('needs nothing from the server for a model it already holds', async () => {
    const { api, asked } = scriptedServer('GUEST', []);
    const held = { ...hubEntry, cachedRevision: REVISION, files: [{ path: 'config.json', size: 9 }], totalSize: 9 };
    expect(await prepareOnServer(api, held as CatalogueEntry, { dtype: 'q8', accountHint: '' })).toEqual({
      revision: REVISION,
      files: ['config.json'],
      bytes: 9,
    });
    expect(asked).toEqual([]);
  });
});

describe('serverCopy', () => {
  const download = (dtype: string, path: string) => ({
    dtype,
    revision: REVISION,
    files: [{ path, size: 5 }],
    totalSize: 5,
  });

  it("is the server's download of the device's dtype, or of every dtype, and nothing of another dtype", () => {
    const q8 = { ...hubEntry, downloads: [download('q8', 'onnx/model_quantized.onnx')] } as unknown as CatalogueEntry;
    expect(serverCopy(q8, 'q8')).toEqual({ revision: REVISION, files: ['onnx/model_quantized.onnx'], bytes: 5 });
    expect(serverCopy(q8, 'q4')).toBeNull();
    const every = { ...hubEntry, downloads: [download('*', 'onnx/model.onnx')] } as unknown as CatalogueEntry;
    expect(serverCopy(every, 'q4')?.files).toEqual(['onnx/model.onnx']);
    expect(serverCopy(hubEntry, 'q8')).toBeNull();
  });
});

describe('findCatalogueModel', () => {
  const catalogue = [
    { id: 'nano-shakespeare', repo: 'mesh/nano-shakespeare', revision: 'main' },
    { id: 'mesh--tiny-added', repo: 'mesh/tiny-added', revision: 'main' },
    { id: 'mesh--pinned-1a2b3c4d', repo: 'mesh/pinned', revision: 'v1' },
    { id: 'mesh--two', repo: 'mesh/two', revision: 'main' },
    { id: 'mesh--two-0f0f0f0f', repo: 'mesh/two', revision: 'v2' },
    { id: 'mesh--split-aaaaaaaa', repo: 'mesh/split', revision: 'a' },
    { id: 'mesh--split-bbbbbbbb', repo: 'mesh/split', revision: 'b' },
  ];
  const id = (name: string) => findCatalogueModel(catalogue, name).entry?.id ?? null;

  it('finds an entry by its id, or by its repo id or Hub URL (any case), at the revision a URL pins or main', () => {
    expect(id('mesh--tiny-added')).toBe('mesh--tiny-added');
    expect(id('mesh/tiny-added')).toBe('mesh--tiny-added');
    expect(id('Mesh/Tiny-Added')).toBe('mesh--tiny-added');
    expect(id('https://huggingface.co/mesh/tiny-added')).toBe('mesh--tiny-added');
    expect(id('mesh/two')).toBe('mesh--two');
    expect(id('https://huggingface.co/mesh/two/tree/v2')).toBe('mesh--two-0f0f0f0f');
    // The one entry of a repo, whatever revision it was added at.
    expect(id('mesh/pinned')).toBe('mesh--pinned-1a2b3c4d');
  });

  it('finds nothing for a repo it does not have, another revision, or several entries and no revision', () => {
    expect(findCatalogueModel(catalogue, 'mesh/unknown')).toEqual({ entry: null, ambiguous: [] });
    expect(findCatalogueModel(catalogue, 'no-such-model')).toEqual({ entry: null, ambiguous: [] });
    expect(id('https://huggingface.co/mesh/pinned/tree/v2')).toBeNull();
    expect(findCatalogueModel(catalogue, 'mesh/split')).toEqual({
      entry: null,
      ambiguous: ['mesh--split-aaaaaaaa', 'mesh--split-bbbbbbbb'],
    });
  });
});

describe('enterRoom', () => {
  it('makes an account a member of a custom room, and nobody a member of global', async () => {
    const { api, asked } = scriptedServer('ACCOUNT', []);
    await enterRoom(api, 'global', 'ACCOUNT');
    await enterRoom(api, 'team', 'GUEST');
    await enterRoom(api, 'team', 'ACCOUNT', 'INVITE');
    expect(asked).toEqual(['join team INVITE']);
  });
});

describe('session cookie', () => {
  it('is read from either name the server sets, and nothing else', () => {
    expect(sessionFromSetCookie('mesh_session=abc; Path=/; HttpOnly')).toBe('mesh_session=abc');
    expect(sessionFromSetCookie('__Host-mesh_session=abc; Secure')).toBe('__Host-mesh_session=abc');
    expect(sessionFromSetCookie('other=abc')).toBeNull();
    expect(sessionFromSetCookie(null)).toBeNull();
    expect(sessionCookieHeader('t')).toBe('mesh_session=t; __Host-mesh_session=t');
  });
});
