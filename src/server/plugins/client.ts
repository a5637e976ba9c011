// Serves the PWA from the same origin as the API: the built `dist/` in production, Vite's dev server (as
// middleware, sharing this HTTP server for hot reload) in development.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../paths.ts';
import middie from '@fastify/middie';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export interface ClientPluginOptions {
  mode: 'static' | 'vite' | 'none';
  distDir: string;
}

/**
 * Paths the server answers itself; everything else belongs to the client app. Model files live under
 * `/models/...`; `/models` itself is the app's Models screen.
 */
export function isServerPath(url: string): boolean {
  return /^\/(api|v1|socket\.io)(\/|\?|$)/.test(url) || url.startsWith('/models/');
}

export const clientPlugin = fp<ClientPluginOptions>(
  async (app, options) => {
    const shell = options.mode === 'static' ? await serveStatic(app, path.resolve(options.distDir)) : false;
    if (options.mode === 'vite') await serveWithVite(app);
    app.setNotFoundHandler({ preHandler: app.rateLimit() }, async (request, reply) => {
      const pathname = request.url.split('?')[0] ?? '/';
      const wantsPage = shell && request.method === 'GET' && !isServerPath(pathname) && !path.extname(pathname);
      if (wantsPage) return reply.header('cache-control', 'no-cache').sendFile('index.html');
      return reply.code(404).send({ error: 'NOT_FOUND', message: `No route for ${request.method} ${pathname}` });
    });
  },
  { name: 'client' },
);

/** Serves `dist/`; returns whether there is an app shell to answer client-side routes with. */
async function serveStatic(app: FastifyInstance, root: string): Promise<boolean> {
  const index = path.join(root, 'index.html');
  if (!existsSync(index)) {
    app.log.warn({ root }, 'client is not built (run `npm run build`); serving the API only');
    return false;
  }
  await app.register(fastifyStatic, {
    root,
    index: false,
    wildcard: false,
    // Source maps are never served, even if a build made them (docs/SECURITY.md).
    allowedPath: (pathName) => !pathName.endsWith('.map'),
    // Vite names assets by content hash, so they never change; the shell and service worker must revalidate.
    setHeaders(reply, filePath) {
      // ONNX Runtime's files sit under a folder named by its version (vite.config.ts), so they never change either.
      const immutable = ['assets', 'ort'].some((dir) => filePath.startsWith(path.join(root, dir) + path.sep));
      reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  return true;
}

async function serveWithVite(app: FastifyInstance) {
  const { createServer } = await import('vite');
  const vite = await createServer({
    // The project root, whatever the working directory (vite.config.ts and its plugins resolve files from it).
    root: PROJECT_ROOT,
    server: { middlewareMode: true, hmr: { server: app.server } },
    appType: 'spa',
  });
  await app.register(middie);
  app.use((req, res, next) => (isServerPath(req.url ?? '/') ? next() : vite.middlewares(req, res, next)));
  app.addHook('onClose', async () => vite.close());
}
