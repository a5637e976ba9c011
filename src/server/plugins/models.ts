// The model catalogue and the download proxy: one downloader per server, its downloads resumed on start and
// paused (partial files kept) on shutdown.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { type Env, resolveModelCacheDir } from '../env.ts';
import { type BundledModel, bundledFile } from '../models/bundled.ts';
import { ModelDownloader } from '../models/downloader.ts';
import { HubClient } from '../models/hub-client.ts';
import { anyAddedModel } from '../services/user-models.ts';

declare module 'fastify' {
  interface FastifyInstance {
    models: {
      manifest: ManifestEntry[];
      downloader: ModelDownloader;
      /** The Hub's API, for the checks of models added by repo id (models.add). */
      hub: HubClient;
      /** A verified file of a bundled or downloaded model, for the /models route. */
      file(
        repo: string,
        revision: string,
        file: string,
      ): Promise<{ path: string; size: number; sha256: string; immutable: boolean } | null>;
    };
  }
}

export interface ModelsPluginOptions {
  env: Env;
  manifest: ManifestEntry[];
  bundled: BundledModel[];
}

export const modelsPlugin = fp<ModelsPluginOptions>(
  async (app: FastifyInstance, { env, manifest, bundled }) => {
    const downloader = new ModelDownloader({
      db: app.database.prisma,
      database: app.database.availability,
      log: app.log.child({ component: 'downloads' }),
      cacheDir: resolveModelCacheDir(env),
      hubOrigin: env.HF_ENDPOINT,
      token: env.HF_TOKEN,
      concurrency: env.DOWNLOAD_CONCURRENCY,
      stallTimeoutMs: env.DOWNLOAD_STALL_TIMEOUT_MS,
      maxRedirects: env.DOWNLOAD_MAX_REDIRECTS,
      diskMarginBytes: env.DOWNLOAD_DISK_MARGIN_BYTES,
    });
    const hub = new HubClient({
      origin: env.HF_ENDPOINT,
      token: env.HF_TOKEN,
      maxRedirects: env.DOWNLOAD_MAX_REDIRECTS,
      timeoutMs: env.DOWNLOAD_STALL_TIMEOUT_MS,
    });
    app.decorate('models', {
      manifest,
      downloader,
      hub,
      file: async (repo: string, revision: string, file: string) =>
        (await bundledFile(bundled, repo, revision, file)) ?? downloader.cachedFile(repo, revision, file),
    });
    // Resuming must not hold up (or fail) start-up: it only queues downloads.
    app.addHook('onReady', async () => {
      const entryOf = async (id: string) =>
        manifest.find((m) => m.id === id) ?? (await anyAddedModel(app.database.prisma, id));
      downloader.resumeInterrupted(entryOf).then(
        (resumed) => resumed.length > 0 && app.log.info({ resumed }, 'resuming interrupted model downloads'),
        (error: unknown) => app.log.error({ err: error }, 'could not resume interrupted model downloads'),
      );
    });
    // Before the database closes: stop downloads so their last progress is written and parts are kept.
    app.addHook('preClose', async () => downloader.close());
  },
  { name: 'models', dependencies: ['db'] },
);
