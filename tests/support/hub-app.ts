// The download tests' set-up in one place: a scratch folder, the fake Hub with the repos a test publishes on it, an
// app (`buildApp` on a fresh PGlite database) whose download proxy asks that Hub, and an account signed up on it
// (server downloads need one); torn down in the opposite order. `useHubApp` registers it around a test file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { FakeHub } from '../../scripts/fake-hub.ts';
import { buildApp } from '../../src/server/app.ts';
import { signUpInjected } from './accounts.ts';
import { type TestDatabase, openTestDatabase } from './database.ts';
import { testEnv } from './env.ts';

export interface HubAppOptions {
  /** Names the scratch folder (`mesh-<name>-…`). */
  name: string;
  /**
   * Publishes the test's repos on the started fake Hub; returns the catalogue file's path (MANIFEST_PATH), or
   * nothing for the built-in catalogue.
   */
  publish(hub: FakeHub, dir: string): Promise<string | void>;
  /** The app's environment beyond the Hub, the catalogue, the model cache and a zero disk margin. */
  env?: Record<string, string>;
  /** Listen on a port of 127.0.0.1 (`origin`), for clients that fetch over HTTP; otherwise `inject` only. */
  listen?: boolean;
  /** The account signed up on the app (`cookie`). */
  username: string;
}

export class HubApp {
  dir = '';
  readonly hub = new FakeHub();
  db!: TestDatabase;
  app!: FastifyInstance;
  /** The app's URL when it listens (`listen`), else empty. */
  origin = '';
  /** The session cookie (`name=value`) of the account signed up on the app. */
  cookie = '';
  private hubStarted = false;

  constructor(private readonly options: HubAppOptions) {}

  async start(): Promise<this> {
    try {
      this.dir = await mkdtemp(path.join(tmpdir(), `mesh-${this.options.name}-`));
      await this.hub.start();
      this.hubStarted = true;
      const manifestPath = await this.options.publish(this.hub, this.dir);
      this.db = await openTestDatabase('pglite');
      this.app = await buildApp({
        env: testEnv({
          HF_ENDPOINT: this.hub.origin,
          ...(manifestPath ? { MANIFEST_PATH: manifestPath } : {}),
          MODEL_CACHE_DIR: path.join(this.dir, 'cache'),
          DOWNLOAD_DISK_MARGIN_BYTES: '0',
          ...this.options.env,
        }),
        database: this.db.database,
      });
      if (this.options.listen) this.origin = await this.app.listen({ host: '127.0.0.1', port: 0 });
      else await this.app.ready();
      this.cookie = await signUpInjected(this.app, this.options.username);
      return this;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Asks for a server download (models.download) as `cookie`; the answer, without waiting for the download. */
  askDownload(input: Record<string, unknown>, cookie = this.cookie): Promise<LightMyRequestResponse> {
    return this.app.inject({ method: 'POST', url: '/api/trpc/models.download', payload: input, headers: { cookie } });
  }

  /** Asks for a server download and resolves once it has settled (ready, failed or cancelled); throws if refused. */
  async download(input: { id: string } & Record<string, unknown>, cookie = this.cookie): Promise<void> {
    const started = await this.askDownload(input, cookie);
    if (started.statusCode !== 200)
      throw new Error(`models.download of ${input.id} answered ${started.statusCode}: ${started.body}`);
    await this.app.models.downloader.settled(input.id);
  }

  async close(): Promise<void> {
    await this.app?.close();
    await this.db?.cleanup();
    if (this.hubStarted) await this.hub.stop();
    this.hubStarted = false;
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Starts the hub app before the file's tests and closes it after them. */
export function useHubApp(options: HubAppOptions, timeoutMs?: number): HubApp {
  const fixture = new HubApp(options);
  beforeAll(() => fixture.start(), timeoutMs);
  afterAll(() => fixture.close());
  return fixture;
}

/** Writes `models` as a catalogue file replacing the built-in one (`<dir>/manifest.json`); returns its path. */
export async function writeCatalogue(dir: string, models: unknown[]): Promise<string> {
  const manifestPath = path.join(dir, 'manifest.json');
  await writeFile(manifestPath, JSON.stringify({ mode: 'replace', models }));
  return manifestPath;
}
