// The browser tests' set-up in one place: a scratch folder, a production build of the client, the real server
// process serving it, and headless Chromium; torn down in the opposite order. `useAppServer` registers it around a
// test file (beforeAll/afterAll); fakes at the edge (the fake Hub, the fake OpenAI-compatible API) are `services`,
// started before the server, whose environment can name them, and stopped after it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import type { FakeOpenAI } from '../../scripts/fake-openai.ts';
import { accountPage, buildClient, guestPage, launchChromium } from './browser.ts';
import { type ServerProcess, freePort, startServer } from './server-process.ts';

/** Something the server talks to, started before it and stopped after it (FakeHub, FakeOpenAI). */
export interface Service {
  start(): Promise<unknown>;
  stop(): Promise<void>;
}

export interface AppServerOptions {
  /** Names the scratch folder (`mesh-e2e-<name>-…`). */
  name: string;
  /** Started first, in order; stopped last, in the opposite order. */
  services?: Service[];
  /**
   * The server's environment beyond its data folder and the build, once the services are up: may publish models
   * into `dir` (it runs while the client builds).
   */
  env?: (dir: string) => Record<string, string> | Promise<Record<string, string>>;
  /** Chromium's GPU mode (launchChromium), or `none` for a file that launches its own browsers. */
  browser?: 'no-gpu' | 'webgpu' | 'none';
  /** The build id of the client (`buildClient`). */
  buildId?: string;
  /** A port fixed for the file, so that `restart` comes back on the same origin (service worker, caches). */
  fixedPort?: boolean;
  /** How long the server may take to say it listens (two minutes unless told: tsx starts slowly on a busy machine). */
  startTimeoutMs?: number;
}

export class AppServer {
  dir = '';
  /** The client build the server serves (`<dir>/dist`). */
  dist = '';
  /** URL path of the inference worker bundle in the build. */
  workerPath = '';
  server!: ServerProcess;
  /** The server's environment, without CLIENT_DIST_DIR. */
  serverEnv: Record<string, string> = {};
  private launched: Browser | null = null;
  private readonly started: Service[] = [];

  constructor(private readonly options: AppServerOptions) {}

  private get startTimeoutMs(): number {
    return this.options.startTimeoutMs ?? 120_000;
  }

  get url(): string {
    return this.server.url;
  }

  get browser(): Browser {
    if (!this.launched) throw new Error(`the ${this.options.name} app server launched no browser`);
    return this.launched;
  }

  async start(): Promise<this> {
    try {
      this.dir = await mkdtemp(path.join(tmpdir(), `mesh-e2e-${this.options.name}-`));
      for (const service of this.options.services ?? []) {
        await service.start();
        this.started.push(service);
      }
      this.dist = path.join(this.dir, 'dist');
      const [{ workerPath }, env] = await Promise.all([
        buildClient(this.dist, this.options.buildId),
        this.options.env?.(this.dir) ?? {},
      ]);
      this.workerPath = workerPath;
      this.serverEnv = {
        DATA_DIR: path.join(this.dir, 'data'),
        ...(this.options.fixedPort ? { PORT: String(await freePort()) } : {}),
        ...env,
      };
      this.server = await startServer({ ...this.serverEnv, CLIENT_DIST_DIR: this.dist }, this.startTimeoutMs);
      const mode = this.options.browser ?? 'no-gpu';
      if (mode !== 'none') this.launched = await launchChromium(mode);
      return this;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** A page in a context of its own (its own cookies and storage). */
  async newPage(options: BrowserContextOptions = {}): Promise<Page> {
    return (await this.browser.newContext(options)).newPage();
  }

  /** A page signed in as a guest named `displayName` (guestPage). */
  guest(displayName: string, options: BrowserContextOptions = {}): Promise<Page> {
    return guestPage(this.browser, this.url, displayName, options);
  }

  /** A page signed up as the new account `username` (accountPage). */
  account(username: string, options: BrowserContextOptions = {}): Promise<Page> {
    return accountPage(this.browser, this.url, username, options);
  }

  /** Stops the server (the browser stays open) and resolves once it has exited. */
  async stopServer(): Promise<void> {
    if (!this.server) return;
    this.server.child.kill('SIGTERM');
    await this.server.exited;
  }

  /**
   * The server stopped and started again with the same environment on a new build of the client (`buildId`), into
   * `<dir>/dist-<buildId>`: with `fixedPort`, the same origin, as a deployment of a new version.
   */
  async restart(buildId: string): Promise<void> {
    await this.stopServer();
    this.dist = path.join(this.dir, `dist-${buildId}`);
    await buildClient(this.dist, buildId);
    this.server = await startServer({ ...this.serverEnv, CLIENT_DIST_DIR: this.dist }, this.startTimeoutMs);
  }

  async close(): Promise<void> {
    await this.launched?.close();
    this.launched = null;
    await this.stopServer();
    for (const service of this.started.splice(0).reverse()) await service.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Starts the app server before the file's tests and closes it after them. */
export function useAppServer(options: AppServerOptions, timeoutMs = 300_000): AppServer {
  const app = new AppServer(options);
  beforeAll(() => app.start(), timeoutMs);
  afterAll(() => app.close());
  return app;
}

/** The server's environment for the fake OpenAI-compatible API as its cloud provider (`models`), open to guests. */
export function cloudProviderEnv(openai: FakeOpenAI, models: string): Record<string, string> {
  return {
    OPENAI_API_KEY: openai.apiKey,
    OPENAI_BASE_URL: openai.baseUrl,
    OPENAI_MODELS: models,
    CHAT_PROVIDERS_FOR_GUESTS: 'true',
  };
}
