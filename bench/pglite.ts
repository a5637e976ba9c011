// PGlite's memory and speed under the server's settings (issue 16):
//   npx tsx bench/pglite.ts
// Each configuration runs in a process of its own (V8 flags are per process), on its own copy of one database
// made and migrated beforehand (as a server finds it on every start but the first): stock PGlite, the server's PGLITE_SETTINGS, and those with V8's --liftoff-only (what
// scripts/start.mjs sets). Per run: resident memory after opening, then after WARMUP_S of mixed queries (so
// optimised code has been compiled), reads/s (a session joined with its user by primary key, as every authenticated
// call does) and writes/s (a guest user and its session in a transaction) for DURATION_S each. Configurations
// alternate over ROUNDS rounds; the stock one is the baseline of the ratios.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGLITE_SETTINGS, openDatabase } from '../src/server/db/client.ts';

const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 5);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

interface Config {
  name: string;
  settings: string[];
  nodeFlags: string[];
}
const CONFIGS: Config[] = [
  { name: 'stock PGlite', settings: [], nodeFlags: [] },
  { name: 'PGLITE_SETTINGS', settings: PGLITE_SETTINGS, nodeFlags: [] },
  { name: 'PGLITE_SETTINGS + --liftoff-only', settings: PGLITE_SETTINGS, nodeFlags: ['--liftoff-only'] },
];

interface Result {
  rssOpenMiB: number;
  rssMiB: number;
  readsPerSecond: number;
  writesPerSecond: number;
}

const mib = (bytes: number) => Math.round(bytes / 1048576);

async function forSeconds(seconds: number, work: () => Promise<unknown>): Promise<number> {
  let count = 0;
  for (const end = performance.now() + seconds * 1000; performance.now() < end; count++) await work();
  return count / seconds;
}

async function child(template: string, settings: string[]): Promise<Result> {
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-pglite-'));
  try {
    await cp(template, path.join(dir, 'pglite'), { recursive: true });
    const db = await openDatabase({ pgliteDir: path.join(dir, 'pglite'), pgliteSettings: settings });
    const rssOpenMiB = mib(process.memoryUsage().rss);
    const ids: string[] = [];
    const write = async () => {
      const id = randomUUID().replaceAll('-', '').slice(0, 32);
      const now = Date.now();
      await db.prisma.user.create({
        data: {
          displayName: 'Bench',
          sessions: {
            create: {
              id,
              secretHash: '0'.repeat(64),
              idleExpiresAt: new Date(now + 1e9),
              expiresAt: new Date(now + 2e9),
            },
          },
        },
      });
      ids.push(id);
    };
    const read = () =>
      db.prisma.session.findUnique({
        where: { id: ids[Math.floor(Math.random() * ids.length)]! },
        select: { expiresAt: true, user: { select: { id: true, kind: true, displayName: true } } },
      });
    await forSeconds(WARMUP_S, async () => (ids.length < 100 || Math.random() < 0.2 ? write() : read()));
    const writesPerSecond = await forSeconds(DURATION_S, write);
    const readsPerSecond = await forSeconds(DURATION_S, read);
    const rssMiB = mib(process.memoryUsage().rss);
    await db.close();
    return { rssOpenMiB, rssMiB, readsPerSecond, writesPerSecond };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runChild(template: string, config: Config): Promise<Result> {
  return new Promise((resolve, reject) => {
    const script = fileURLToPath(import.meta.url);
    const proc = spawn(
      process.execPath,
      [...config.nodeFlags, '--import', 'tsx', script, '--child', template, JSON.stringify(config.settings)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop()!) as Result)
        : reject(new Error(`child exited ${code}`)),
    );
  });
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) {
  const [template, settings] = process.argv.slice(childAt + 1);
  console.log(JSON.stringify(await child(template!, JSON.parse(settings!) as string[])));
} else {
  const templateDir = await mkdtemp(path.join(tmpdir(), 'bench-pglite-template-'));
  const template = path.join(templateDir, 'pglite');
  await (await openDatabase({ pgliteDir: template })).close();
  const results = new Map<string, Result[]>(CONFIGS.map((config) => [config.name, []]));
  for (let round = 0; round < ROUNDS; round++)
    for (const config of CONFIGS) results.get(config.name)!.push(await runChild(template, config));
  await rm(templateDir, { recursive: true, force: true });
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const summary = CONFIGS.map((config) => {
    const runs = results.get(config.name)!;
    return {
      name: config.name,
      rssOpen: mean(runs.map((r) => r.rssOpenMiB)),
      rss: mean(runs.map((r) => r.rssMiB)),
      reads: mean(runs.map((r) => r.readsPerSecond)),
      writes: mean(runs.map((r) => r.writesPerSecond)),
    };
  });
  const base = summary[0]!;
  console.log(`PGlite, ${ROUNDS} rounds, warm-up ${WARMUP_S} s, ${DURATION_S} s each (mean of rounds)`);
  console.log('| configuration | RSS opened | RSS after queries | reads/s | ratio | writes/s | ratio |');
  console.log('|---|---|---|---|---|---|---|');
  for (const s of summary)
    console.log(
      `| ${s.name} | ${s.rssOpen.toFixed(0)} MiB | ${s.rss.toFixed(0)} MiB | ${s.reads.toFixed(0)} | ${(s.reads / base.reads).toFixed(2)} | ${s.writes.toFixed(0)} | ${(s.writes / base.writes).toFixed(2)} |`,
    );
}
