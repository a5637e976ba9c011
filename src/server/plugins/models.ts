// The model catalogue and the download proxy: one downloader per server, its downloads resumed on start and
// paused (partial files kept) on shutdown.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { type Env, resolveModelCacheDir } from '../env.ts';
import { ModelDownloader } from '../models/downloader.ts';

declare module 'fastify' {
  interface FastifyInstance {
    models: { manifest: ManifestEntry[]; downloader: ModelDownloader };
  }
}

export interface ModelsPluginOptions {
  env: Env;
  manifest: ManifestEntry[];
}

export const modelsPlugin = fp<ModelsPluginOptions>(
  async (app: FastifyInstance, { env, manifest }) => {
    const downloader = new ModelDownloader({
      db: app.database.prisma,
      log: app.log.child({ component: 'downloads' }),
      cacheDir: resolveModelCacheDir(env),
      hubOrigin: env.HF_ENDPOINT,
      token: env.HF_TOKEN,
      concurrency: env.DOWNLOAD_CONCURRENCY,
      stallTimeoutMs: env.DOWNLOAD_STALL_TIMEOUT_MS,
      maxRedirects: env.DOWNLOAD_MAX_REDIRECTS,
      diskMarginBytes: env.DOWNLOAD_DISK_MARGIN_BYTES,
    });
    app.decorate('models', { manifest, downloader });
    // Resuming must not hold up (or fail) start-up: it only queues downloads.
    app.addHook('onReady', async () => {
      downloader.resumeInterrupted(manifest).then(
        (resumed) => resumed.length > 0 && app.log.info({ resumed }, 'resuming interrupted model downloads'),
        (error: unknown) => app.log.error({ err: error }, 'could not resume interrupted model downloads'),
      );
    });
    // Before the database closes: stop downloads so their last progress is written and parts are kept.
    app.addHook('preClose', async () => downloader.close());
  },
  { name: 'models', dependencies: ['db'] },
);
