// The app (`buildApp` on a fresh database) listening on a port of 127.0.0.1, for tests that reach it as clients do
// (the real tRPC client, fetch), with accounts made straight in its database, each with a session.
// `useListeningApp` registers it around a test file or a describe block.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { buildApp } from '../../src/server/app.ts';
import { accountCookie } from './accounts.ts';
import { type ChatClient, chatClient } from './chat-client.ts';
import { type DatabaseKind, type TestDatabase, openTestDatabase } from './database.ts';
import { testEnv } from './env.ts';

export interface ListeningAppOptions {
  /** The database (PGlite unless told). */
  kind?: DatabaseKind;
  /** The app's environment over testEnv's. */
  env?: Record<string, string>;
}

export interface Account {
  client: ChatClient;
  cookie: string;
  userId: string;
}

export class ListeningApp {
  db!: TestDatabase;
  app!: FastifyInstance;
  /** The app's URL. */
  base = '';

  constructor(private readonly options: ListeningAppOptions = {}) {}

  async start(): Promise<this> {
    this.db = await openTestDatabase(this.options.kind ?? 'pglite');
    this.app = await buildApp({ env: testEnv(this.options.env), database: this.db.database });
    this.base = await this.app.listen({ host: '127.0.0.1', port: 0 });
    return this;
  }

  /** A new account `username` with a session: its cookie, its id, and the tRPC client signed in as it on `url`. */
  async account(username: string, url = this.base): Promise<Account> {
    const { cookie, userId } = await accountCookie(this.db.database.prisma, username);
    return { client: chatClient(url, cookie), cookie, userId };
  }

  async close(): Promise<void> {
    await this.app?.close();
    await this.db?.cleanup();
  }
}

/** Starts the listening app before the tests of the file (or describe block) and closes it after them. */
export function useListeningApp(options: ListeningAppOptions = {}): ListeningApp {
  const fixture = new ListeningApp(options);
  beforeAll(() => fixture.start());
  afterAll(() => fixture.close());
  return fixture;
}
