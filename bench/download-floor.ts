// The floor under the download proxy's benchmark (issue 3): what one Node process can do with a 1 GiB HTTP body
// on this machine when it only reads it, hashes it, writes it, or does all the proxy must (read, sha256, write,
// fsync). No server, database or redirects: if this floor is far below reading alone, so is the proxy.
//   npx tsx bench/download-floor.ts          (BENCH_SIZE_MB=1024)
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 1024) * 1024 * 1024;
const block = Buffer.alloc(1024 * 1024, 7);
const server = http.createServer((_request, response) => {
  response.writeHead(200, { 'content-length': SIZE });
  let sent = 0;
  const pump = () => {
    while (sent < SIZE) {
      sent += block.length;
      if (!response.write(block)) return void response.once('drain', pump);
    }
    response.end();
  };
  pump();
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
const dir = await mkdtemp(path.join(tmpdir(), 'mesh-floor-'));
const file = path.join(dir, 'body.bin');

type Mode = 'read' | 'read+sha256' | 'read+write' | 'read+write+fsync' | 'read+sha256+write+fsync';

async function run(mode: Mode): Promise<number> {
  const started = performance.now();
  const response = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(url, resolve).on('error', reject),
  );
  const hash = createHash('sha256');
  const hashing = mode.includes('sha256');
  if (!mode.includes('write')) {
    for await (const chunk of response) if (hashing) hash.update(chunk as Buffer);
  } else {
    const out = createWriteStream(file, { highWaterMark: 4 << 20 });
    await pipeline(
      response,
      new Writable({
        highWaterMark: 4 << 20,
        write(chunk: Buffer, _encoding, callback) {
          if (hashing) hash.update(chunk);
          if (out.write(chunk)) callback();
          else out.once('drain', callback);
        },
        final(callback) {
          out.end(callback);
        },
      }),
    );
    if (mode.includes('fsync')) {
      const handle = await open(file, 'r+');
      await handle.sync();
      await handle.close();
    }
  }
  hash.digest();
  return SIZE / 1024 / 1024 / ((performance.now() - started) / 1000);
}

const results: [Mode, number][] = [];
for (const mode of ['read', 'read+sha256', 'read+write', 'read+write+fsync', 'read+sha256+write+fsync'] as Mode[])
  results.push([mode, await run(mode)]);
const read = results[0]?.[1] ?? 1;
console.log(`${SIZE / 1024 / 1024} MiB over loopback HTTP, one process:`);
for (const [mode, speed] of results)
  console.log(`   ${mode.padEnd(26)} ${speed.toFixed(0)} MiB/s  (${(speed / read).toFixed(2)} of reading alone)`);
server.close();
await rm(dir, { recursive: true, force: true });
