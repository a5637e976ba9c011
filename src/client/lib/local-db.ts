// The app's one IndexedDB database: conversations kept on this device, and what the app keeps for offline use
// (the catalogue's last good copy). Records read back are checked by their readers' zod schemas: a copy written
// by an older version of the app, or edited in DevTools, must not crash a screen.
import { type DBSchema, type IDBPDatabase, openDB } from 'idb';
import type { Conversation } from '../features/chat/conversations.ts';

interface Schema extends DBSchema {
  conversations: { key: string; value: Conversation; indexes: { updatedAt: number } };
  /** Values the app keeps by name (`catalogue`), stored as read from the server and checked when read back. */
  kept: { key: string; value: unknown };
}

let database: Promise<IDBPDatabase<Schema>> | null = null;

export function localDb(): Promise<IDBPDatabase<Schema>> {
  if (database) return database;
  const opening = openDB<Schema>('mesh-nanollm', 2, {
    upgrade(db, oldVersion) {
      if (oldVersion < 1)
        db.createObjectStore('conversations', { keyPath: 'id' }).createIndex('updatedAt', 'updatedAt');
      if (oldVersion < 2) db.createObjectStore('kept');
    },
    // Another tab runs a newer version of the app and wants to upgrade: let it, and reopen on the next call.
    blocking() {
      database = null;
      void opening.then((db) => db.close());
    },
  });
  database = opening;
  return opening;
}
