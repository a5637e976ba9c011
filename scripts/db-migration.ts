// npm run db:migration -- <name>
// Writes prisma/migrations/<timestamp>_<name>/migration.sql: the SQL that takes a database with every existing
// migration applied to prisma/schema.prisma. Prisma's `migrate dev` needs a shadow database that its WASM
// engine cannot drive here, so: apply the migrations to a scratch PGlite, introspect it (`db pull`), and diff
// that datamodel against the schema (`migrate diff`). The server applies the new file on its next start.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDatabase } from '../src/server/db/client.ts';
import { MIGRATIONS_DIR } from '../src/server/db/migrate.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const PRISMA_CLI = path.join(ROOT, 'node_modules/prisma/build/index.js');

/** Runs the Prisma CLI; `doneWhen` ends it once its output says it finished (it can linger on PGlite's handle). */
function prisma(args: string[], env: Record<string, string>, doneWhen?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PRISMA_CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (doneWhen?.test(output)) {
        child.kill();
        resolve(output);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 || doneWhen?.test(output) ? resolve(output) : reject(new Error(output))));
  });
}

const name = process.argv[2];
if (!name || !/^[a-z0-9_]{1,60}$/.test(name)) {
  console.error('Usage: npm run db:migration -- <name>   (lower-case letters, digits and _, e.g. add_room_topic)');
  process.exit(2);
}

const scratch = await mkdtemp(path.join(tmpdir(), 'mesh-migration-'));
try {
  const pgliteDir = path.join(scratch, 'pglite');
  await (await openDatabase({ pgliteDir })).close();
  const pulled = path.join(scratch, 'pulled.prisma');
  await copyFile(path.join(ROOT, 'prisma/schema.prisma'), pulled);
  await prisma(['db', 'pull', '--schema', pulled], { PRISMA_PGLITE_DIR: pgliteDir }, /Introspected \d+ models/);
  const out = path.join(scratch, 'migration.sql');
  await prisma(
    [
      'migrate',
      'diff',
      '--from-schema-datamodel',
      pulled,
      '--to-schema-datamodel',
      'prisma/schema.prisma',
      '--script',
      '--output',
      out,
    ],
    {},
  );
  const sql = await readFile(out, 'utf8');
  if (/^-- This is an empty migration\.\s*$/.test(sql.trim())) {
    console.warn('prisma/schema.prisma and prisma/migrations already agree: no migration written.');
  } else {
    const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
    const dir = path.join(MIGRATIONS_DIR, `${stamp}_${name}`);
    await mkdir(dir);
    await writeFile(path.join(dir, 'migration.sql'), sql);
    console.warn(`Wrote ${path.relative(ROOT, dir)}/migration.sql; review it, then restart the server to apply it.`);
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}
