// `npm start` and `npm run serve`: the server compiled by scripts/build.mjs runs as one plain node process, and a
// build whose sources did not change is skipped.
import { execFile } from 'node:child_process';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, guestCookie, startServer } from './support/server-process.ts';

const run = promisify(execFile);
const buildServer = async () =>
  (await run(process.execPath, ['scripts/build.mjs', '--if-stale', 'server'], { cwd: ROOT })).stdout;

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mesh-start-'));
  await buildServer();
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Processes whose parent is `pid` (Linux /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Fields after the command name (which may hold spaces) start with the state, then the parent's pid.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (parent === pid) children.push(Number(entry));
  }
  return children;
}

describe('the compiled server', () => {
  it('skips the server build when its sources did not change since the last one', async () => {
    expect(await buildServer()).toMatch(/server: up to date/);
  });

  it('serves from one plain node process, with no tsx and no helper processes', async () => {
    const server = await startServer({ DATA_DIR: dir, CLIENT_DIST_DIR: path.join(dir, 'no-client') }, 60_000, {
      compiled: true,
    });
    try {
      const health = await fetch(`${server.url}/api/health`);
      expect(health.status).toBe(200);
      expect(await guestCookie(server.url, 'Compiled')).toMatch(/session=/);
      const commandLine = (await readFile(`/proc/${server.child.pid}/cmdline`, 'utf8')).split('\0');
      expect(commandLine.slice(1, 3)).toEqual(['scripts/start.mjs', '--no-build']);
      expect(commandLine.join(' ')).not.toMatch(/tsx/);
      expect(await childrenOf(server.child.pid!)).toEqual([]);
      // The headless peer (werift, transformers.js and ONNX Runtime's native binding) loads only when /v1 needs it.
      expect(await readFile(`/proc/${server.child.pid}/maps`, 'utf8')).not.toMatch(/onnxruntime/);
      // stdout is a pipe, not a terminal: one JSON object a line (LOG_FORMAT=auto).
      const lines = server.output().trim().split('\n');
      expect(lines.map((line) => (JSON.parse(line) as { level: number }).level)).not.toContain(undefined);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
    // The first start on a fresh DATA_DIR initialises the database: slow on a busy machine.
  }, 90_000);

  it('writes readable lines, not JSON, with LOG_FORMAT=pretty', async () => {
    const server = await startServer(
      { DATA_DIR: dir, CLIENT_DIST_DIR: path.join(dir, 'no-client'), LOG_FORMAT: 'pretty' },
      60_000,
      { compiled: true },
    );
    try {
      expect(server.output()).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] \S*INFO\S*: \S*Server listening at http:/m);
      expect(server.output()).not.toMatch(/^\{/m);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
  });
});
