// Conversations kept on this device for an account, sent to it: those an account's owner kept while offline (with
// their edits and deletes) and a guest's moved into an account. Each goes in parts the server's limits allow, its
// progress kept on the device after each part, and leaves the device once the account holds all of it.
import { TRPCClientError } from '@trpc/client';
import { z } from 'zod';
import { CONVERSATION_LIMITS } from '../../../shared/schemas/conversation.ts';
import { trpc } from '../../lib/trpc.ts';
import { importParts, recordOf, unsaved, withIds, type ServerConversation } from './conversation-wire.ts';
import {
  type ChatItem,
  type Conversation,
  deleteConversation,
  listConversations,
  saveConversation,
} from './conversations.ts';
import { pendingDeletes, setPendingDeletes } from './device-store.ts';

const KNOWN_ACCOUNT_KEY = 'mesh:account';
const KnownAccountSchema = z.object({ id: z.uuid() }).strict();

/** The account signed in when the app last reached the server: offline, its conversations wait here for it. */
export function knownAccount(): string | null {
  try {
    const parsed = KnownAccountSchema.safeParse(JSON.parse(localStorage.getItem(KNOWN_ACCOUNT_KEY) ?? 'null'));
    return parsed.success ? parsed.data.id : null;
  } catch {
    return null;
  }
}

export function rememberAccount(id: string | null): void {
  try {
    if (id === null) localStorage.removeItem(KNOWN_ACCOUNT_KEY);
    else localStorage.setItem(KNOWN_ACCOUNT_KEY, JSON.stringify({ id }));
  } catch {
    // Storage disabled: offline conversations then stay on the device only.
  }
}

const SyncForSchema = z.object({ accountId: z.uuid(), synced: z.number().int().nonnegative() }).strict();

const isNotFound = (cause: unknown) =>
  cause instanceof TRPCClientError && (cause.data as { code?: string } | undefined)?.code === 'NOT_FOUND';

/**
 * Makes the account's copy of `conversation` hold no message this device no longer has: deleted here, or replaced
 * by an edit or a regenerated answer while offline. A copy the account no longer has (deleted on another device)
 * goes back to the account as a new conversation.
 */
async function reconcile(conversation: Conversation, legacySynced: number): Promise<Conversation> {
  const id = conversation.serverId;
  if (!id) return conversation;
  let server: ServerConversation;
  try {
    server = await trpc.conversation.byId.query({ id });
  } catch (cause) {
    if (!isNotFound(cause)) throw cause;
    return { ...conversation, serverId: null, messages: conversation.messages.map(({ serverId: _, ...m }) => m) };
  }
  let { messages } = conversation;
  // Kept by a version of the app that counted the messages the account held instead of naming them.
  if (legacySynced > 0 && !messages.some((m) => m.serverId)) {
    messages = messages.map((m, i) => {
      const held = server.messages[i];
      return i < legacySynced && held ? { ...m, serverId: held.id } : m;
    });
  }
  const kept = new Set(messages.map((m) => m.serverId));
  const first = server.messages.findIndex((m) => !kept.has(m.id));
  if (first >= 0) {
    const gone = server.messages.slice(first);
    const firstGone = gone[0];
    if (firstGone && gone.every((m) => !kept.has(m.id))) {
      await trpc.conversation.truncate.mutate({ id, messageId: firstGone.id });
    } else {
      for (const m of gone) if (!kept.has(m.id)) await trpc.conversation.removeMessage.mutate({ id, messageId: m.id });
    }
  }
  return { ...conversation, messages };
}

/**
 * Sends to the account the messages of `conversation` it does not hold yet, in parts, keeping the progress on this
 * device after each (a sync cut short resumes where it stopped); returns the conversation as the account holds it.
 */
async function upload(conversation: Conversation, accountId: string): Promise<Conversation> {
  let current = conversation;
  const at = unsaved(current.messages);
  for (const part of importParts(at, current.messages)) {
    const { id, messageIds } = await trpc.conversation.import.mutate({
      conversationId: current.serverId ?? undefined,
      ...(current.serverId ? {} : { title: current.title.slice(0, CONVERSATION_LIMITS.titleChars) }),
      ...(current.settings ? { settings: current.settings } : {}),
      messages: part.map((index) => {
        const { role, content, record } = current.messages[index] as ChatItem;
        return { role, content, ...(role === 'assistant' && record ? { record: recordOf(record) } : {}) };
      }),
    });
    current = withIds(current, id, part, messageIds);
    await saveConversation({ ...current, syncFor: { accountId, synced: 0 } });
  }
  if (current.serverId) {
    // Renamed here, or settings changed with no new message to carry them: they go too.
    if (current.titled) await trpc.conversation.rename.mutate({ id: current.serverId, title: current.title });
    if (current.settings && !at.length)
      await trpc.conversation.settings.mutate({ id: current.serverId, settings: current.settings });
  }
  return current;
}

let syncing: Promise<unknown> = Promise.resolve();

/**
 * Sends the conversations this device keeps for `accountId` to the account: those kept while offline (with their
 * edits and deletes), and a guest's moved into it. Each is removed from the device once the account holds it all.
 * Returns the device id → server id of each conversation synced in full. One sync at a time in this tab: two at once
 * would send the same messages twice.
 */
export function syncOfflineConversations(accountId: string): Promise<Map<string, string>> {
  const run = syncing.then(async () => {
    const synced = new Map<string, string>();
    for (const stored of await listConversations(1000)) {
      const parsed = SyncForSchema.safeParse(stored.syncFor);
      if (!parsed.success || parsed.data.accountId !== accountId) continue;
      const held = await upload(await reconcile(stored, parsed.data.synced), accountId);
      if (held.serverId) {
        await deleteConversation(stored.id);
        synced.set(stored.id, held.serverId);
      }
    }
    const pending = pendingDeletes();
    for (const { id } of pending.filter((p) => p.accountId === accountId)) {
      await trpc.conversation.remove.mutate({ id }).catch((cause: unknown) => {
        if (!isNotFound(cause)) throw cause;
      });
      setPendingDeletes(pendingDeletes().filter((p) => p.id !== id));
    }
    return synced;
  });
  syncing = run.catch(() => undefined);
  return run;
}

/** A guest's conversations on this device: what signing up or logging in offers to move into the account. */
export async function guestConversations(): Promise<Conversation[]> {
  return (await listConversations(1000)).filter((c) => !c.syncFor && !c.serverId && c.messages.length > 0);
}

/** Moves these device conversations into the account: uploaded, then removed from the device. */
export async function moveToAccount(accountId: string, conversations: Conversation[]): Promise<Map<string, string>> {
  for (const conversation of conversations)
    await saveConversation({ ...conversation, syncFor: { accountId, synced: 0 } });
  return syncOfflineConversations(accountId);
}
