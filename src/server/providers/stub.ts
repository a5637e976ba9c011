// The keyless embedded default: canned text built from the request, so a fresh install (and every test) can
// chat through the server with no key and no network. No language model runs here, and its label says so.
import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ChatProvider, ProviderChunk, ProviderRequest } from './provider.ts';

export const STUB_MODEL = 'stub-echo';
const QUOTED_WORDS = 12;

/** The whole reply: the same request (model, messages, seed) always gives the same text. */
export function stubReply(request: ProviderRequest): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([request.model, request.messages, request.sampling.seed ?? 0]))
    .digest('hex')
    .slice(0, 8);
  const last = request.messages.findLast((message) => message.role === 'user');
  const words = last?.content.split(/\s+/).filter(Boolean) ?? [];
  const quote = words.slice(0, QUOTED_WORDS).join(' ') + (words.length > QUOTED_WORDS ? ' …' : '');
  const turns = request.messages.filter((message) => message.role === 'user').length;
  return (
    `[stub ${digest}] This is the stub provider: no language model ran. ` +
    `Your last message had ${words.length} ${words.length === 1 ? 'word' : 'words'}` +
    (quote ? `, starting "${quote}"` : '') +
    `, in a chat of ${turns} ${turns === 1 ? 'turn' : 'turns'}. ` +
    'Set a provider key on the server for real answers.'
  );
}

/** The text before the first stop sequence, as a model's server cuts it; whether one was found. */
export function cutAtStop(text: string, stops: readonly string[] = []): { text: string; stopped: boolean } {
  const at = Math.min(...stops.map((stop) => text.indexOf(stop)).filter((index) => index >= 0));
  return Number.isFinite(at) ? { text: text.slice(0, at), stopped: true } : { text, stopped: false };
}

async function* streamStub(request: ProviderRequest, signal: AbortSignal): AsyncGenerator<ProviderChunk> {
  const reply = cutAtStop(stubReply(request), request.sampling.stop);
  // One "token" per word with its trailing space, so max tokens and tokens/s mean something here too.
  const tokens = reply.text.match(/\S+\s*/g) ?? [];
  const limit = request.sampling.maxTokens ?? Number.POSITIVE_INFINITY;
  let sent = 0;
  for (const token of tokens) {
    if (sent >= limit) break;
    // Yield the event loop between tokens, as a real stream would, and stop when the client leaves.
    await nextTurn(undefined, { signal });
    yield { type: 'delta', text: token };
    sent++;
  }
  const promptTokens = request.messages.reduce((sum, message) => sum + (message.content.match(/\S+/g)?.length ?? 0), 0);
  yield {
    type: 'finish',
    finishReason: sent < tokens.length ? 'length' : 'stop',
    model: request.model,
    usage: { promptTokens, completionTokens: sent },
  };
}

export function stubProvider(): ChatProvider {
  return {
    id: 'stub',
    label: 'Stub (canned replies, no model)',
    defaultModel: STUB_MODEL,
    // Any name: the name only seeds the canned text, and nothing is paid for.
    models: '*',
    configured: true,
    stub: true,
    stream: streamStub,
  };
}
