// Prisma CLI config. Prisma 6.19's WASM schema engine (engine: "js") works offline; the native one would be
// downloaded from Prisma's host, which this project must never need. The CLI talks to an in-process PGlite
// in PRISMA_PGLITE_DIR (a scratch database made by scripts/db-migration.ts), never to the app's own data.
import { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { defineConfig } from 'prisma/config';

// The CLI reads the schema's `env("DATABASE_URL")` before it looks at the adapter, and without a value it
// falls back to downloading a native query engine. The adapter decides the real connection; this only fills the slot.
process.env.DATABASE_URL ??= 'postgresql://adapter@localhost/unused';

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  async adapter() {
    const dir = process.env.PRISMA_PGLITE_DIR;
    return new PrismaPGlite(dir ? new PGlite(dir) : new PGlite());
  },
});
