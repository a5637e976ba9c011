import { afterAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from './client.ts';

describe('the embedded PGlite database', () => {
  let db: Database | undefined;
  afterAll(() => db?.close());

  it('runs with the small buffers and few connection slots of PGLITE_SETTINGS, not a server’s defaults', async () => {
    db = await openDatabase({ pgliteDir: 'memory://' });
    const show = async (name: 'shared_buffers' | 'max_connections') =>
      (await db!.prisma.$queryRawUnsafe<Record<string, string>[]>(`SHOW ${name}`))[0]?.[name];
    expect(await show('shared_buffers')).toBe('16MB');
    expect(await show('max_connections')).toBe('5');
  });
});
