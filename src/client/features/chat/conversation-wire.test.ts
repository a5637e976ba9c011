// The mapping between the device's conversations and the server's (conversation-wire.ts), as plain values.
import { describe, expect, it } from 'vitest';
import { CONVERSATION_LIMITS } from '../../../shared/schemas/conversation.ts';
import {
  type ServerMessage,
  heldFrom,
  importParts,
  itemFromServer,
  recordOf,
  unsaved,
  withIds,
} from './conversation-wire.ts';
import type { ChatItem, Conversation } from './conversations.ts';

const conversation = (messages: ChatItem[]): Conversation => ({ id: 'c', title: 't', updatedAt: 0, messages });
const serverMessage = (over: Partial<ServerMessage>): ServerMessage =>
  ({
    id: 'm1',
    role: 'ASSISTANT',
    content: 'Fair is foul',
    route: 'LOCAL',
    provider: null,
    modelId: null,
    backend: null,
    ttftMs: null,
    tokensPerSecond: null,
    ...over,
  }) as ServerMessage;

describe('conversation wire', () => {
  it('gives the server’s ids to the messages at the indexes it saved, and finds what it does not hold', () => {
    const before = conversation([
      { role: 'user', content: 'a', serverId: 's0' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'c' },
      { role: 'assistant', content: 'd' },
    ]);
    expect(unsaved(before.messages)).toEqual([1, 2, 3]);
    const after = withIds(before, 'conv', [2, 3], ['s2', 's3']);
    expect(after.serverId).toBe('conv');
    expect(after.messages.map((m) => m.serverId)).toEqual(['s0', undefined, 's2', 's3']);
    expect(before.messages[2]?.serverId).toBeUndefined();
    expect(heldFrom(after, 1)).toBe('s2');
    expect(heldFrom(after, 4)).toBeUndefined();
  });

  it('sends a record with the model id and TTFT cut to what the server stores', () => {
    expect(recordOf({ route: 'LOCAL', modelId: 'x'.repeat(200), ttftMs: 96.6, tokensPerSecond: 41 })).toMatchObject({
      route: 'LOCAL',
      modelId: 'x'.repeat(128),
      ttftMs: 97,
      tokensPerSecond: 41,
    });
  });

  it('shows a server answer with its record as the readout, and a question without one', () => {
    expect(
      itemFromServer(serverMessage({ modelId: 'nano', backend: 'wasm', ttftMs: 96, tokensPerSecond: 41 })),
    ).toEqual({
      role: 'assistant',
      content: 'Fair is foul',
      serverId: 'm1',
      readout: 'nano on a device · WASM · TTFT 96 ms · 41.0 tok/s',
    });
    expect(itemFromServer(serverMessage({ route: 'CLOUD', provider: null }))).toMatchObject({ readout: 'cloud' });
    expect(itemFromServer(serverMessage({ role: 'USER', content: 'q', modelId: 'nano' }))).toEqual({
      role: 'user',
      content: 'q',
      serverId: 'm1',
    });
  });

  it('cuts an import into parts within the count and character limits, keeping the order', () => {
    const { importMessages, importChars } = CONVERSATION_LIMITS;
    const many = Array.from({ length: importMessages + 1 }, () => ({ role: 'user' as const, content: 'x' }));
    const at = many.map((_, i) => i);
    expect(importParts(at, many).map((part) => part.length)).toEqual([importMessages, 1]);
    const long = [0, 1, 2].map(() => ({ role: 'user' as const, content: 'y'.repeat(Math.floor(importChars / 2) + 1) }));
    expect(importParts([0, 1, 2], long)).toEqual([[0], [1], [2]]);
    expect(importParts([], long)).toEqual([]);
  });
});
